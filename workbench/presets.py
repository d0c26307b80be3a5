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
from dataclasses import dataclass, field
from pathlib import Path

from .engine.envfile import EnvFile, EnvFileError, parse_env_text, read_env_text
from .engine.settings import SPEC_BY_ENV, Settings, SettingsError, format_value, parse_overrides

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
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
    def voicemode_values(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k.startswith("VOICEMODE_")}

    @property
    def workbench_values(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if not k.startswith("VOICEMODE_")}

    def text(self) -> str:
        return render_env(self.values, self.description)


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
    lines = [f"# {line}".rstrip() for line in header or []]
    lines += [f"{key}={quote_value(value)}" for key, value in values.items()]
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
    return Preset(name=name, values=values, description=list(description or []))


def parse_preset(text: str, path: Path | None = None, name: str | None = None) -> Preset:
    """Parse and validate a preset; raises `PresetError` naming the line or the value at fault."""
    env = parse_env_text(text, path)
    where = str(path) if path else "preset"
    fatal = [i for i in env.issues if i.fatal]
    if fatal:
        raise PresetError(f"{where}: {fatal[0]}")
    values = env.as_dict()
    unknown = [k for k in values if k not in SPEC_BY_ENV]
    if unknown:
        raise PresetError(f"{where}: unknown setting {unknown[0]} (a typo? see 'workbench settings')")
    if "OPENAI_API_KEY" in values:
        raise PresetError(f"{where}: a preset must not carry OPENAI_API_KEY")
    try:
        typed = parse_overrides(values, where)
        Settings(**typed)  # cross-field checks (initial buffer within the maximum)
    except SettingsError as exc:
        raise PresetError(str(exc)) from None
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


def load_preset(ref: str | Path, presets_dir: Path = PRESETS_DIR) -> Preset:
    """A preset by file path, or by the name of a shipped one (`lan`, `wifi`, ...)."""
    path = Path(ref)
    if not path.exists() and not path.suffix and (presets_dir / f"{ref}.env").is_file():
        path = presets_dir / f"{ref}.env"
    if not path.exists():
        names = ", ".join(p.stem for p in shipped_presets(presets_dir)) or "none"
        raise PresetError(f"{ref}: no such preset file (shipped presets: {names})")
    try:
        text = read_env_text(path)
    except EnvFileError as exc:
        raise PresetError(str(exc)) from None
    return parse_preset(text, path, name=path.stem)


def shipped_presets(presets_dir: Path = PRESETS_DIR) -> list[Path]:
    return sorted(presets_dir.glob("*.env")) if presets_dir.is_dir() else []


def save_preset(preset: Preset, path: Path, *, overwrite: bool = False) -> Path:
    """Write a preset file (atomically); refuses to replace an existing file unless asked to."""
    if path.exists() and not overwrite:
        raise PresetError(f"{path} already exists; choose another name or allow overwriting")
    if path.exists() and path.is_dir():
        raise PresetError(f"{path} is a folder")
    _atomic_write(path, preset.text(), mode=0o644)
    return path


# -- applying to voicemode's file -----------------------------------------------------------------------
def voicemode_env_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".voicemode" / "voicemode.env"


@dataclass
class ApplyPlan:
    target: Path
    old_text: str
    new_text: str
    changed: dict[str, tuple[str | None, str]]  # key -> (old value or None if added, new value)
    skipped: list[str]  # workbench-only keys left out of voicemode's file
    exists: bool

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            fromfile=f"{self.target} (now)", tofile=f"{self.target} (after)"))

    @property
    def has_changes(self) -> bool:
        return self.old_text != self.new_text


def plan_apply(preset: Preset, target: Path) -> ApplyPlan:
    """What applying `preset` to `target` would change; touches nothing on disk."""
    exists = target.exists()
    if exists and not target.is_file():
        raise PresetError(f"{target} is not a regular file")
    try:
        old_text = target.read_text(encoding="utf-8") if exists else ""
    except UnicodeDecodeError:
        raise PresetError(f"{target} is not a UTF-8 text file; it was left as it is") from None
    except PermissionError:
        raise PresetError(f"{target}: permission denied") from None
    env = parse_env_text(old_text, target)
    fatal = [i for i in env.issues if i.fatal]
    if fatal:
        raise PresetError(f"{target} is malformed ({fatal[0]}); fix it first, it was left as it is")
    wanted = preset.voicemode_values
    new_text, changed = _merge(old_text, env, wanted, preset.name)
    return ApplyPlan(target=target, old_text=old_text, new_text=new_text, changed=changed,
                     skipped=list(preset.workbench_values), exists=exists)


def _merge(old_text: str, env: EnvFile, wanted: dict[str, str], name: str
           ) -> tuple[str, dict[str, tuple[str | None, str]]]:
    lines = old_text.splitlines()
    current = env.as_dict()
    changed: dict[str, tuple[str | None, str]] = {}
    replaced: set[str] = set()
    # every active occurrence of a key gets the new value, in place (comments and order stay)
    for entry in sorted(env.entries, key=lambda e: e.line, reverse=True):
        if entry.key in wanted:
            value = wanted[entry.key]
            if entry.value != value:
                lines[entry.line - 1:entry.end_line] = [f"{entry.key}={quote_value(value)}"]
            replaced.add(entry.key)
    for key, value in wanted.items():
        old = current.get(key)
        if old != value:
            changed[key] = (old, value)
    added = [k for k in wanted if k not in replaced]
    if added:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(f"# Stream Workbench preset: {name}")
        lines += [f"{key}={quote_value(wanted[key])}" for key in added]
    text = "\n".join(lines) + "\n" if lines else ""
    return text, changed


def write_apply(plan: ApplyPlan) -> Path | None:
    """Carry out a plan: backup (if the file existed), then an atomic replace with mode 600.

    Returns the backup's path. The target is re-read first: if it changed since the plan was made,
    nothing is written.
    """
    if not plan.has_changes:
        return None
    now = plan.target.read_text(encoding="utf-8") if plan.target.exists() else ""
    if now != plan.old_text:
        raise PresetError(f"{plan.target} changed since the diff was shown; nothing was written")
    backup = None
    if plan.exists:
        backup = _free_backup_path(plan.target)
        _atomic_write(backup, plan.old_text, mode=0o600)
    _atomic_write(plan.target, plan.new_text, mode=0o600)
    return backup


def _free_backup_path(target: Path) -> Path:
    candidate = target.with_name(target.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.bak{n}")
        n += 1
    return candidate


def _atomic_write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
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

