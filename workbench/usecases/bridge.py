"""Turning the voicemode bridge on and off: `workbench voicemode enable | disable | status`.

enable
  1. Finds the voicemode the user runs: `--python PATH`; else the `voicemode` command on PATH and the
     interpreter its first line names; else a `uv tool install voice-mode` (`uv tool dir`, or
     `~/.local/share/uv/tools/voice-mode`). Says which.
  2. Asks that interpreter (a short script) for voicemode's version, its site-packages, and which of the
     packages the engine needs there are installed. Only the versions whose playback this project has
     read are bridged (`KNOWN`); any other: a clear message naming it, nothing changed.
  3. The engine needs numpy and sounddevice (voicemode has both), soxr and, for compressed formats, av
     (PyAV). Missing ones are resolved first without installing anything (`pip install --dry-run`, or
     `uv pip install --dry-run` where the environment has no pip): if that would change the version of
     anything already installed, it refuses and names it. Then it installs them.
  4. Links this engine's package into a folder of its own (`~/.local/share/stream-workbench/bridge`) and
     writes `workbench_voicemode_bridge.pth` into voicemode's site-packages: Python's standard startup
     hook (`site`), which puts that folder on the path and imports `workbench.bridge.boot` (quietly: a
     missing folder costs nothing, never an error at every start).
  5. Records what it added in `~/.config/stream-workbench/voicemode-bridge.json`.
  A failure at any step undoes the steps before it: nothing is left half-installed. Enabling twice
  changes nothing the second time.

disable removes exactly what enable added (the `.pth`, the packages it installed) and nothing else.
status says on or off, for which voicemode and version, where the hook lives, and the last reply heard
through it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..bridge.publish import ReplyFigures, read_replies

KNOWN = (r"8\.12(\.\d+)?", r"9\.0(\.\d+)?")  # voicemode versions whose playback this bridge has read
KNOWN_TEXT = "8.12 and 9.0.x"
PTH_NAME = "workbench_voicemode_bridge.pth"
PTH_MARK = "# stream-workbench: the voicemode bridge (workbench voicemode disable removes this file)"
NEEDED = {"numpy": "numpy", "sounddevice": "sounddevice", "soxr": "soxr", "av": "av"}  # import name: package
PROBE_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 900

Progress = Callable[[str], None]


class BridgeError(Exception):
    """Said to the user in one line; nothing was changed (or what was changed was undone)."""


@dataclass
class Voicemode:
    python: str  # the interpreter voicemode runs with
    found_by: str  # how it was found, for the user
    version: str = ""
    purelib: str = ""  # its site-packages
    python_version: str = ""
    missing: list[str] = field(default_factory=list)  # packages the engine needs that are not there
    installed: dict[str, str] = field(default_factory=dict)  # every distribution there: name -> version
    has_pip: bool = False
    has_uv: bool = False

    @property
    def pth(self) -> Path:
        return Path(self.purelib) / PTH_NAME


@dataclass
class Manifest:
    """What `enable` added, so that `disable` removes that and nothing else."""

    python: str
    found_by: str
    voicemode_version: str
    pth: str
    bridge_dir: str
    installed: list[str] = field(default_factory=list)  # "name==version" enable installed
    enabled_at: float = field(default_factory=time.time)


def config_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".config" / "stream-workbench"


def manifest_path(home: Path | None = None) -> Path:
    return config_dir(home) / "voicemode-bridge.json"


def bridge_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".local" / "share" / "stream-workbench" / "bridge"


# -- finding voicemode ---------------------------------------------------------------------------------
def find_voicemode(python: str | None = None, *, home: Path | None = None) -> tuple[str, str]:
    """(interpreter, how it was found); BridgeError when there is none."""
    if python:
        path = Path(python).expanduser()
        if not path.exists():
            raise BridgeError(f"--python {python}: no such file")
        return str(path), f"--python {python}"
    command = shutil.which("voicemode")
    if command:
        interpreter = _interpreter_of(Path(command))
        if interpreter:
            return interpreter, f"the voicemode command on PATH ({command})"
    for tools in _uv_tool_dirs(home):
        candidate = tools / "voice-mode" / "bin" / "python"
        if candidate.exists():
            return str(candidate), f"a uv tool install ({tools / 'voice-mode'})"
    raise BridgeError("no voicemode found: no 'voicemode' command on PATH and no 'uv tool install voice-mode'; "
                      "point at its interpreter with --python PATH")


def _interpreter_of(script: Path) -> str | None:
    """The Python a console script runs with: its first line (`#!/path/python`), or the `exec` line pip
    writes when that path is too long for a first line."""
    try:
        head = script.read_bytes()[:4096].decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    if not head or not head[0].startswith("#!"):
        return None
    first = head[0][2:].strip()
    if first.endswith(("/sh", "/bash")):  # '''exec' "/long/path/python" "$0" "$@"
        for line in head[1:4]:
            m = re.search(r"exec'?\s+\"?([^\"\s]+python[^\"\s]*)", line)
            if m:
                return m.group(1)
        return None
    interpreter = first.split()[0]
    if interpreter.endswith("/env"):
        parts = first.split()
        return shutil.which(parts[1]) if len(parts) > 1 else None
    return interpreter


def _uv_tool_dirs(home: Path | None) -> list[Path]:
    out = []
    if os.environ.get("UV_TOOL_DIR"):
        out.append(Path(os.environ["UV_TOOL_DIR"]))
    xdg = os.environ.get("XDG_DATA_HOME")
    out.append(Path(xdg) / "uv" / "tools" if xdg else (home or Path.home()) / ".local" / "share" / "uv" / "tools")
    return out


PROBE = r"""
import importlib.metadata as md, importlib.util as u, json, shutil, sys, sysconfig, os
out = {"python_version": "%d.%d.%d" % sys.version_info[:3], "purelib": sysconfig.get_paths()["purelib"]}
try:
    out["version"] = md.version("voice-mode")
except md.PackageNotFoundError:
    out["version"] = ""
out["installed"] = {}
for d in md.distributions():
    name = (d.metadata["Name"] or "").lower().replace("_", "-")
    if name:
        out["installed"][name] = d.version
out["modules"] = {m: u.find_spec(m) is not None for m in MODULES}
out["has_pip"] = u.find_spec("pip") is not None
out["has_uv"] = u.find_spec("uv") is not None
print(json.dumps(out))
"""


def probe(python: str, found_by: str) -> Voicemode:
    """Ask the interpreter about itself and its voicemode."""
    try:
        r = subprocess.run([python, "-I", "-c", PROBE.replace("MODULES", repr(list(NEEDED)))], capture_output=True,
                           text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BridgeError(f"cannot run {python}: {exc}") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BridgeError(f"{python} did not answer as a Python interpreter: {last}")
    try:
        data = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BridgeError(f"{python} did not answer as expected") from None
    vm = Voicemode(python=python, found_by=found_by, version=data["version"], purelib=data["purelib"],
                   python_version=data["python_version"], installed=data["installed"],
                   has_pip=data["has_pip"], has_uv=data["has_uv"])
    vm.missing = [NEEDED[m] for m, present in data["modules"].items() if not present]
    return vm


def check_version(vm: Voicemode) -> None:
    if not vm.version:
        raise BridgeError(f"{vm.python} ({vm.found_by}) has no voice-mode installed")
    if not any(re.fullmatch(pattern, vm.version) for pattern in KNOWN):
        raise BridgeError(f"voicemode {vm.version} ({vm.found_by}) is not a version whose playback this bridge "
                          f"knows ({KNOWN_TEXT}); nothing was changed")


# -- installing what the engine needs ----------------------------------------------------------------
def _installer(vm: Voicemode) -> list[str]:
    if vm.has_pip:
        return [vm.python, "-m", "pip"]
    if vm.has_uv:
        return [vm.python, "-m", "uv", "pip"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip"]
    raise BridgeError(f"voicemode's environment ({vm.python}) has neither pip nor uv to install "
                      f"{', '.join(vm.missing)} with")


def _target(cmd: list[str], vm: Voicemode) -> list[str]:
    return ["--python", vm.python] if cmd[-1] == "pip" and cmd[-2].endswith("uv") else []


def plan_install(vm: Voicemode) -> list[tuple[str, str]]:
    """What installing the missing packages would install, (name, version) each, without installing
    anything; BridgeError when it would change a version already installed there."""
    if not vm.missing:
        return []
    cmd = _installer(vm)
    if cmd[-1] == "pip" and cmd[1:3] == ["-m", "pip"]:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            r = _run([*cmd, "install", "--dry-run", "--quiet", "--disable-pip-version-check", "--report",
                      str(report), *vm.missing])
            try:
                items = json.loads(report.read_text())["install"]
            except (OSError, ValueError, KeyError):
                raise BridgeError(f"pip could not resolve {', '.join(vm.missing)}: {_last_line(r)}") from None
        plan = [(i["metadata"]["name"].lower().replace("_", "-"), i["metadata"]["version"]) for i in items]
    else:
        r = _run([*cmd, "install", *_target(cmd, vm), "--dry-run", *vm.missing])
        text = r.stdout + r.stderr
        if r.returncode != 0:
            raise BridgeError(f"uv could not resolve {', '.join(vm.missing)}: {_last_line(r)}")
        added = re.finditer(r"^\s*\+\s*(\S+)==(\S+)", text, re.M)
        plan = [(m.group(1).lower().replace("_", "-"), m.group(2)) for m in added]
        removed = re.findall(r"^\s*-\s*(\S+)==(\S+)", text, re.M)
        if removed:
            name, version = removed[0]
            raise BridgeError(f"installing {', '.join(vm.missing)} would replace {name} {version} in voicemode's "
                              "environment; nothing was changed")
    for name, version in plan:
        have = vm.installed.get(name)
        if have is not None and have != version:
            raise BridgeError(f"installing {', '.join(vm.missing)} would change {name} from {have} to {version} in "
                              "voicemode's environment (a version voicemode may rely on); nothing was changed")
    return [(n, v) for n, v in plan if n not in vm.installed]


def install(vm: Voicemode, plan: list[tuple[str, str]]) -> None:
    if not plan:
        return
    cmd = _installer(vm)
    pins = [f"{n}=={v}" for n, v in plan]
    quiet = ["--quiet", "--disable-pip-version-check"] if cmd[1:3] == ["-m", "pip"] else []
    r = _run([*cmd, "install", *_target(cmd, vm), *quiet, "--no-deps", *pins], timeout=INSTALL_TIMEOUT_S)
    if r.returncode != 0:
        raise BridgeError(f"installing {', '.join(pins)} into voicemode's environment failed: {_last_line(r)}")


def uninstall(python: str, packages: list[str]) -> str | None:
    """Remove what enable installed; the reason it could not, if it could not."""
    if not packages:
        return None
    names = [p.split("==")[0] for p in packages]
    vm = Voicemode(python=python, found_by="")
    probe_ok = True
    try:
        vm = probe(python, "")
    except BridgeError:
        probe_ok = False
    try:
        cmd = _installer(vm) if probe_ok else [python, "-m", "pip"]
    except BridgeError as exc:
        return str(exc)
    if cmd[1:3] == ["-m", "pip"]:
        r = _run([*cmd, "uninstall", "--yes", "--quiet", *names])
    else:
        r = _run([*cmd, "uninstall", *_target(cmd, vm), *names])
    return None if r.returncode == 0 else _last_line(r)


def _run(cmd: list[str], timeout: float = PROBE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BridgeError(f"{' '.join(cmd[:3])}: {exc}") from None


def _last_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (r.stderr + "\n" + r.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {r.returncode}"


# -- the hook -----------------------------------------------------------------------------------------
def pth_text(folder: Path) -> str:
    # a path line puts the folder on sys.path; an `import` line is run (site.py): quietly, so a folder that
    # was removed since costs nothing, never an error printed at every start of every Python there
    return (f"{PTH_MARK}\n{folder}\n"
            "import sys; exec('try:\\n import workbench.bridge.boot\\nexcept Exception:\\n pass')\n")


def link_engine(folder: Path) -> None:
    """`folder/workbench` -> this engine's package (replaced if it pointed elsewhere)."""
    package = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "workbench"
    if link.is_symlink() or link.exists():
        if link.resolve() == package:
            return
        if not link.is_symlink():
            raise BridgeError(f"{link} exists and is not a link this tool made; move it away and enable again")
        link.unlink()
    link.symlink_to(package, target_is_directory=True)


def _write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(home: Path | None = None) -> Manifest | None:
    try:
        data = json.loads(manifest_path(home).read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def is_ours(pth: Path) -> bool:
    try:
        return pth.read_text(encoding="utf-8").startswith(PTH_MARK)
    except OSError:
        return False


# -- the commands --------------------------------------------------------------------------------------
@dataclass
class Status:
    on: bool
    voicemode: Voicemode | None
    manifest: Manifest | None
    pth: Path | None
    last_reply: ReplyFigures | None
    problem: str | None = None  # why the state is not what the files say (a moved link, a lost file)

    def to_dict(self) -> dict[str, object]:
        return {"on": self.on, "python": self.voicemode.python if self.voicemode else None,
                "found_by": self.voicemode.found_by if self.voicemode else None,
                "voicemode_version": self.voicemode.version if self.voicemode else None,
                "hook": str(self.pth) if self.pth else None,
                "installed": self.manifest.installed if self.manifest else [],
                "last_reply": self.last_reply.to_dict() if self.last_reply else None, "problem": self.problem}


def enable(python: str | None = None, *, home: Path | None = None, progress: Progress = lambda _: None) -> Manifest:
    """Turn the bridge on (see the module docstring); returns what was added (or was already there)."""
    interpreter, found_by = find_voicemode(python, home=home)
    progress(f"found {found_by}: {interpreter}")
    vm = probe(interpreter, found_by)
    check_version(vm)
    progress(f"voicemode {vm.version} on Python {vm.python_version}; site-packages {vm.purelib}")
    folder = bridge_dir(home)
    before = read_manifest(home)
    if is_ours(vm.pth) and vm.pth.read_text(encoding="utf-8") == pth_text(folder) and not vm.missing:
        link_engine(folder)
        if before is not None and before.pth == str(vm.pth):
            progress("the bridge is already on; nothing changed")
            return before
    plan = plan_install(vm)
    if plan:
        progress("installing into voicemode's environment (no version there changes): "
                 + ", ".join(f"{n} {v}" for n, v in plan))
    install(vm, plan)
    added = [f"{n}=={v}" for n, v in plan]
    try:
        link_engine(folder)
        _write_atomic(vm.pth, pth_text(folder))
        manifest = Manifest(python=interpreter, found_by=found_by, voicemode_version=vm.version, pth=str(vm.pth),
                            bridge_dir=str(folder),
                            installed=sorted(set(added) | set(before.installed if before else [])))
        manifest_path(home).parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(manifest_path(home), json.dumps(asdict(manifest), indent=2) + "\n")
    except (OSError, BridgeError) as exc:
        if is_ours(vm.pth):
            vm.pth.unlink(missing_ok=True)
        uninstall(interpreter, added)
        what = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
        raise BridgeError(f"could not turn the bridge on ({what}); nothing was left changed") from None
    progress(f"hook: {vm.pth}")
    return manifest


def disable(python: str | None = None, *, home: Path | None = None, progress: Progress = lambda _: None) -> bool:
    """Turn the bridge off; False when it was not on. Removes the hook and what enable installed."""
    manifest = read_manifest(home)
    pth: Path | None = Path(manifest.pth) if manifest else None
    interpreter = manifest.python if manifest else None
    if pth is None or python:
        try:
            interpreter, found_by = find_voicemode(python, home=home)
            pth = probe(interpreter, found_by).pth
        except BridgeError:
            if python:  # asked about that one: say why it cannot be looked at
                raise
            if pth is None:  # nothing recorded, no voicemode found: nothing of ours to remove
                return False
    was_on = is_ours(pth)
    if pth.exists() and not was_on:
        raise BridgeError(f"{pth} was not written by this tool; not touching it")
    if was_on:
        pth.unlink()
        progress(f"removed {pth}")
    if manifest is not None:
        problem = uninstall(manifest.python, manifest.installed) if interpreter else None
        if manifest.installed:
            progress(f"removed {', '.join(manifest.installed)}" if problem is None else
                     f"could not remove {', '.join(manifest.installed)}: {problem}")
        manifest_path(home).unlink(missing_ok=True)
    return was_on or manifest is not None


def status(python: str | None = None, *, home: Path | None = None) -> Status:
    manifest = read_manifest(home)
    vm = None
    problem = None
    try:
        if manifest is not None and not python:
            vm = probe(manifest.python, manifest.found_by)
        else:
            vm = probe(*find_voicemode(python, home=home))
    except BridgeError as exc:
        problem = str(exc)
    pth = vm.pth if vm is not None else Path(manifest.pth) if manifest else None
    on = pth is not None and is_ours(pth)
    if on and not (bridge_dir(home) / "workbench").exists():
        problem = f"the hook is there but {bridge_dir(home) / 'workbench'} is gone: enable again"
    replies = read_replies(last=1)
    return Status(on=on, voicemode=vm, manifest=manifest, pth=pth, last_reply=replies[-1] if replies else None,
                  problem=problem)


