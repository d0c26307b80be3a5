"""Reading `.env` files the way voicemode reads them.

voicemode's parser (see shared/NOTES.md section 1) takes one `KEY=VALUE` per line; a value wrapped in
single or double quotes has them stripped and may span lines. It does *not* understand a leading
`export ` (the key becomes `export VOICEMODE_X` and is ignored) and it keeps a trailing `# comment` as
part of the value. We parse exactly like that, so what we read is what voicemode would read, and we
report lines voicemode would silently get wrong as `EnvIssue`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# voicemode reads its file in Python's text mode: lines end at \n, \r\n or \r, and nowhere else (not at
# a form feed or a Unicode line separator, where str.splitlines() would also split)
_LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[tuple[str, str]]:
    """The lines of `text` as voicemode sees them, each with its own ending ('' for a last line without)."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _LINE_END.finditer(text):
        out.append((text[pos : m.start()], m.group()))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out


SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")


def is_secret_key(key: str) -> bool:
    """Keys whose values must never be shown: *_KEY, *_TOKEN, *SECRET*, passwords and credentials."""
    upper = key.upper()
    return upper.endswith(("KEY", "TOKEN")) or any(h in upper for h in SECRET_HINTS[2:])


def masked_text(text: str) -> str:
    """`text` with the value of every secret-looking key replaced by `<hidden>` (for diffs and displays)."""
    env = parse_env_text(text)
    lines = [line for line, _ in split_lines(text)]
    for entry in sorted(env.entries, key=lambda e: e.line, reverse=True):
        if is_secret_key(entry.key):
            lines[entry.line - 1 : entry.end_line] = [f"{entry.key}=<hidden>"]
    return "\n".join(lines) + ("\n" if lines else "")


@dataclass(frozen=True)
class EnvEntry:
    key: str
    value: str
    line: int  # 1-based line where the entry starts
    end_line: int  # 1-based line where it ends (quoted values may span lines)
    quoted: bool = False


@dataclass(frozen=True)
class EnvIssue:
    line: int
    message: str
    fatal: bool = True  # a fatal issue means voicemode would misread the file

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class EnvFile:
    path: Path | None
    entries: list[EnvEntry] = field(default_factory=list)
    issues: list[EnvIssue] = field(default_factory=list)

    def as_dict(self) -> dict[str, str]:
        """Later lines win, as with voicemode's parser."""
        return {e.key: e.value for e in self.entries}

    @property
    def ok(self) -> bool:
        return not any(i.fatal for i in self.issues)


def parse_env_text(text: str, path: Path | None = None) -> EnvFile:
    result = EnvFile(path=path)
    lines = [line for line, _ in split_lines(text)]
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        stripped = raw.strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in stripped:
            result.issues.append(EnvIssue(lineno, f"not a KEY=VALUE line: {_clip(stripped)!r}"))
            continue
        key, _, value = stripped.partition("=")
        key = key.strip()
        value = value.strip()
        if key.startswith("export "):
            result.issues.append(
                EnvIssue(lineno, f"'export' is not understood by voicemode: the key would be {key!r}")
            )
        elif not key or not all(c.isalnum() or c == "_" for c in key):
            result.issues.append(EnvIssue(lineno, f"not a valid variable name: {_clip(key)!r}"))
            continue
        quoted = False
        end = lineno
        if value[:1] in ("'", '"'):
            quote = value[0]
            body = value[1:]
            parts: list[str] = []
            closed = False
            while True:
                pos = body.find(quote)
                if pos >= 0:
                    parts.append(body[:pos])
                    rest = body[pos + 1 :].strip()
                    if rest:
                        result.issues.append(
                            EnvIssue(end, f"text after the closing quote of {key} is not allowed: {_clip(rest)!r}")
                        )
                    closed = True
                    break
                parts.append(body)
                if i >= len(lines):
                    break
                parts.append("\n")
                body = lines[i]
                end = i + 1
                i += 1
            if not closed:
                result.issues.append(EnvIssue(lineno, f"the quote opened for {key} is never closed"))
                continue
            value = "".join(parts)
            quoted = True
        elif "#" in value and " #" in value:
            result.issues.append(
                EnvIssue(
                    lineno,
                    f"a trailing comment becomes part of the value for voicemode: {key}={_clip(value)!r}; "
                    "put comments on their own lines",
                )
            )
        result.entries.append(EnvEntry(key=key, value=value, line=lineno, end_line=end, quoted=quoted))
    return result


class EnvFileError(Exception):
    """A file cannot be read as a `.env` file; `str()` is one line meant for the user."""


def read_env_text(path: Path) -> str:
    """The text of a `.env` file (line endings as they are), or `EnvFileError` saying why it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise EnvFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EnvFileError(f"{path}: is a folder, not a .env file") from None
    except UnicodeDecodeError:
        raise EnvFileError(f"{path}: is not a UTF-8 text file") from None
    except PermissionError:
        raise EnvFileError(f"{path}: permission denied") from None
    except OSError as exc:
        raise EnvFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_env_file(path: Path) -> EnvFile:
    return parse_env_text(read_env_text(path), path)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def voicemode_env_files(cwd: Path, home: Path) -> list[Path]:
    """The files voicemode would read, in the order it reads them (the first one read wins).

    Global `~/.voicemode/voicemode.env` first, then the first project file found walking up from
    `cwd` (`.voicemode.env` or `.voicemode/voicemode.env`).
    """
    found: list[Path] = []
    global_file = home / ".voicemode" / "voicemode.env"
    if global_file.is_file():
        found.append(global_file)
    for folder in [cwd, *cwd.parents]:
        for candidate in (folder / ".voicemode.env", folder / ".voicemode" / "voicemode.env"):
            if candidate.is_file() and candidate.resolve() != global_file.resolve():
                found.append(candidate)
                return found
    return found
