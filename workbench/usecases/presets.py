"""Presets: `.env` files voicemode reads as they are, and merging one into a user's voicemode.env.

A preset is plain `KEY=value` lines with comments on their own lines, no `export`, and quoting only
where voicemode's own `config set` would quote (anything outside `[A-Za-z0-9_@%+=:,./-]`). Settings
voicemode knows keep voicemode's names; settings only the workbench knows use `WORKBENCH_` keys.

Applying a preset to voicemode's file merges only the `VOICEMODE_*` keys (workbench-only keys such as
the simulated network stay out of voicemode's file), shows a diff first, keeps every other line and
comment, writes a backup, and replaces the file atomically with mode 600. A file voicemode would
misread is reported and never overwritten.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.envfile import EnvFile, EnvFileError, masked_text, parse_env_text, read_env_text, split_lines
from ..engine.settings import SPEC_BY_ENV, Settings, SettingsError, format_value, preset_key_problems
from .voicemode import KEY_USE, key_notes, target, unused_line

PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"
# The keys a preset is about: how a reply is streamed and in which format.
PRESET_KEYS = (
    "VOICEMODE_STREAMING_ENABLED",
    "VOICEMODE_STREAM_BUFFER_MS",
    "VOICEMODE_STREAM_CHUNK_SIZE",
    "VOICEMODE_STREAM_MAX_BUFFER",
    "VOICEMODE_TTS_AUDIO_FORMAT",
    "VOICEMODE_TTS_TRAILING_SILENCE",
    "WORKBENCH_NETWORK",
)
RESTART_LINE = "voicemode reads these once, when it starts: restart it to pick up a change."
MARKER = "# Stream Workbench preset:"  # the comment an apply puts above the keys it adds
_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")


class PresetError(Exception):
    """A preset or a target file cannot be used; `str()` is one line meant for the user."""


@dataclass
class Preset:
    name: str
    values: dict[str, str]  # ENV_NAME -> raw value, in file order
    description: list[str] = field(default_factory=list)  # the comment header, without '# '
    path: Path | None = None

    @property
    def summary(self) -> str:
        """What the preset is for: the header's first sentence (an export's name line left out)."""
        words: list[str] = []
        for line in self.description:
            if line.startswith(MARKER[2:]) or line == RESTART_LINE:
                continue
            words.append(line.strip())
            if line.rstrip().endswith("."):
                break
        return " ".join(words)

    @property
    def voicemode_values(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k.startswith("VOICEMODE_")}

    @property
    def workbench_values(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if not k.startswith("VOICEMODE_")}

    def text(self) -> str:
        return render_env(self.values, self.description)

    def voicemode_notes(self) -> list[str]:
        """For each key, whether the targeted voicemode uses it (`voicemode.key_notes`)."""
        return key_notes(list(self.values))


def quote_value(value: str) -> str:
    """A value as voicemode reads it back unchanged: bare if safe, else quoted."""
    if "\n" in value or "\r" in value:
        raise PresetError("a value with a line break cannot be written safely")
    if _SAFE.match(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise PresetError(f"a value with both kinds of quote cannot be written for voicemode: {value!r}")


def render_env(values: dict[str, str], header: list[str] | None = None) -> str:
    """The file's text. A key the targeted voicemode reads but does not use has a line above it saying so
    (a comment on its own line: voicemode would take a trailing one as part of the value)."""
    unused = unused_line(target())
    lines = [f"# {line}".rstrip() for line in header or [] if line != unused]
    for key, value in values.items():
        use = KEY_USE.get(key)
        if use is not None and use.used is False:
            lines.append(f"# {unused}")
        lines.append(f"{key}={quote_value(value)}")
    return "\n".join(lines) + "\n"


def preset_from_settings(settings: Settings, name: str, description: list[str] | None = None,
                         keys: tuple[str, ...] = PRESET_KEYS) -> Preset:
    """The preset keys of `settings` (every one of them, defaults included, so applying it is exact)."""
    values: dict[str, str] = {}
    for env in keys:
        spec = SPEC_BY_ENV[env]
        value = getattr(settings, spec.attr)
        if value is not None:
            values[env] = format_value(value)
    header = list(description or [])
    if RESTART_LINE not in header:
        header.append(RESTART_LINE)
    return Preset(name=name, values=values, description=header)


def preset_problems(text: str, path: Path | None = None) -> list[str]:
    """Everything wrong with a preset, each naming the line or the value at fault (empty: it is fine)."""
    env = parse_env_text(text, path)
    where = str(path) if path else "preset"
    problems = [f"{where}: {issue}" for issue in env.issues if issue.fatal]
    values = env.as_dict()
    problems += preset_key_problems(values, where)
    typed: dict[str, object] = {}
    for key, raw in values.items():
        spec = SPEC_BY_ENV.get(key)
        if spec is None or key == "OPENAI_API_KEY":
            continue
        try:
            typed[spec.attr] = spec.convert(raw, where)
        except SettingsError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            Settings(**typed)  # type: ignore[arg-type]  # cross-field checks (initial buffer within the maximum)
        except SettingsError as exc:
            problems.append(str(exc))
    return problems


def parse_preset(text: str, path: Path | None = None, name: str | None = None) -> Preset:
    """Parse and validate a preset; raises `PresetError` naming the line or the value at fault."""
    problems = preset_problems(text, path)
    if problems:
        raise PresetError(problems[0])
    values = parse_env_text(text, path).as_dict()
    header = _header(text)
    return Preset(name=name or (path.stem if path else "preset"), values=values, description=header, path=path)


def _header(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        out.append(stripped[1:].strip())
    return out


def read_preset_text(ref: str | Path, presets_dir: Path = PRESETS_DIR) -> tuple[Path, str]:
    """The file a preset reference names (a path, or a shipped preset's name) and its text."""
    path = Path(ref)
    if not path.exists() and not path.suffix and (presets_dir / f"{ref}.env").is_file():
        path = presets_dir / f"{ref}.env"
    if not path.exists():
        names = ", ".join(p.stem for p in shipped_presets(presets_dir)) or "none"
        raise PresetError(f"{ref}: no such preset file (shipped presets: {names})")
    try:
        return path, read_env_text(path)
    except EnvFileError as exc:
        raise PresetError(str(exc)) from None


def load_preset(ref: str | Path, presets_dir: Path = PRESETS_DIR) -> Preset:
    """A preset by file path, or by the name of a shipped one (`lan`, `wifi`, ...)."""
    path, text = read_preset_text(ref, presets_dir)
    return parse_preset(text, path, name=path.stem)


def shipped_presets(presets_dir: Path = PRESETS_DIR) -> list[Path]:
    return sorted(presets_dir.glob("*.env")) if presets_dir.is_dir() else []


def save_preset(preset: Preset, path: Path, *, overwrite: bool = False) -> Path:
    """Write a preset file (atomically); refuses to replace an existing file unless asked to."""
    if path.exists() and path.is_dir():
        raise PresetError(f"{path} is a folder")
    if path.exists() and not overwrite:
        raise PresetError(f"{path} already exists; choose another name or allow overwriting")
    try:
        _atomic_write(path, preset.text(), mode=0o644)
    except OSError as exc:
        raise PresetError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# -- applying to voicemode's file -----------------------------------------------------------------------
def voicemode_env_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".voicemode" / "voicemode.env"


@dataclass
class ApplyPlan:
    target: Path  # the file as named (it may be a symbolic link)
    old_text: str  # exactly as on disk, line endings included
    new_text: str
    changed: dict[str, tuple[str | None, str]]  # key -> (old value or None if added, new value)
    skipped: list[str]  # workbench-only keys left out of voicemode's file
    exists: bool
    real_target: Path | None = None  # where the bytes live: the link's target, or `target` itself

    @property
    def written_to(self) -> Path:
        return self.real_target or self.target

    @property
    def diff(self) -> str:
        """A unified diff for people: secret-looking values hidden, line endings not shown."""
        old, new = masked_text(self.old_text), masked_text(self.new_text)
        return "".join(difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"{self.target} (now)", tofile=f"{self.target} (after)"))

    @property
    def has_changes(self) -> bool:
        return self.old_text != self.new_text


def plan_apply(preset: Preset, target: Path) -> ApplyPlan:
    """What applying `preset` to `target` would change; touches nothing on disk.

    A symbolic link (a dotfiles set-up) is followed: the file it points to is what gets read, backed up
    and replaced, and the link stays a link.
    """
    real = Path(os.path.realpath(target))
    exists = real.exists()
    if exists and not real.is_file():
        raise PresetError(f"{target} is not a regular file")
    try:
        old_text = read_env_text(real) if exists else ""
    except EnvFileError as exc:
        raise PresetError(f"{exc}; it was left as it is") from None
    env = parse_env_text(old_text, target)
    fatal = [i for i in env.issues if i.fatal]
    if fatal:
        raise PresetError(f"{target} is malformed ({fatal[0]}); fix it first, it was left as it is")
    wanted = preset.voicemode_values
    new_text, changed = _merge(old_text, env, wanted, preset.name)
    return ApplyPlan(target=target, old_text=old_text, new_text=new_text, changed=changed,
                     skipped=list(preset.workbench_values), exists=exists,
                     real_target=real if real != target.absolute() else None)


def _merge(old_text: str, env: EnvFile, wanted: dict[str, str], name: str
           ) -> tuple[str, dict[str, tuple[str | None, str]]]:
    """The file with `wanted` merged in: values changed in place, new keys appended; every other line,
    comment and line ending kept (new lines take the file's own ending)."""
    lines = split_lines(old_text)
    crlf = sum(1 for _, end in lines if end == "\r\n")
    eol = "\r\n" if crlf and crlf * 2 >= sum(1 for _, end in lines if end) else "\n"
    current = env.as_dict()
    changed: dict[str, tuple[str | None, str]] = {}
    replaced: set[str] = set()
    # every active occurrence of a key gets the new value, in place (comments and order stay)
    for entry in sorted(env.entries, key=lambda e: e.line, reverse=True):
        if entry.key in wanted:
            value = wanted[entry.key]
            if entry.value != value:
                ending = lines[entry.end_line - 1][1] or (eol if entry.end_line < len(lines) else "")
                lines[entry.line - 1 : entry.end_line] = [(f"{entry.key}={quote_value(value)}", ending)]
            replaced.add(entry.key)
    for key, value in wanted.items():
        old = current.get(key)
        if old != value:
            changed[key] = (old, value)
    # a marker an earlier apply left names this preset now (applying wifi over 4g must not leave "4g")
    marked = False
    for i, (line, ending) in enumerate(lines):
        if line.strip().startswith(MARKER):
            lines[i] = (f"{MARKER} {name}", ending)
            marked = True
    added = [k for k in wanted if k not in replaced]
    if added:
        if lines and not lines[-1][1]:
            lines[-1] = (lines[-1][0], eol)  # the last line had no ending
        if lines and lines[-1][0].strip():
            lines.append(("", eol))
        if not marked:
            lines.append((f"{MARKER} {name}", eol))
        lines += [(f"{key}={quote_value(wanted[key])}", eol) for key in added]
    return "".join(line + end for line, end in lines), changed


LOCK_TIMEOUT_S = 10.0


def write_apply(plan: ApplyPlan) -> Path | None:
    """Carry out a plan: a backup of the file as it was (byte for byte, if it existed), then an atomic
    replace with mode 600. Returns the backup's path.

    Holds a lock on the file's folder while it works, and re-reads the file under it: if it changed
    since the plan was made (another apply, an editor), nothing is written. A backup never replaces
    another one. An error reading or writing is a `PresetError`; the file is then as it was.
    """
    if not plan.has_changes:
        return None
    real = plan.written_to
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        with _folder_lock(real.parent):
            now = read_env_text(real) if real.exists() else None
            if (now if now is not None else "") != plan.old_text or (now is not None) != plan.exists:
                raise PresetError(f"{plan.target} changed since the diff was shown; nothing was written "
                                  "(look at it and apply again)")
            backup = _write_backup(real, plan.old_text) if plan.exists else None
            _atomic_write(real, plan.new_text, mode=0o600)
    except EnvFileError as exc:
        raise PresetError(f"{exc}; nothing was written") from None
    except OSError as exc:
        raise PresetError(f"cannot write {real}: {exc.strerror or exc}; nothing was changed") from None
    return backup


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on a folder (flock on its descriptor: no lock file is left behind)."""
    import fcntl
    import time

    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PresetError(f"another apply to {folder} has held its lock for "
                                      f"{LOCK_TIMEOUT_S:g} s; nothing was written") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_backup(target: Path, text: str) -> Path:
    """`text` (the file as it was) in the first free `NAME.bak`, `NAME.bak1`, ...; never over another."""
    data = text.encode("utf-8")
    n = 0
    while True:
        candidate = target.with_name(target.name + (".bak" if n == 0 else f".bak{n}"))
        n += 1
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(candidate)
            raise
        return candidate


def _atomic_write(path: Path, text: str, mode: int) -> None:
    """Write `text` as it is (no newline translation) to a temporary file beside `path`, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)
