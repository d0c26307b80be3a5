"""`workbench voicemode enable | disable | status | watch`: voicemode playing through this engine."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from .common import Handler, UserError


def register(sub: Any) -> dict[str, Handler]:
    vm = sub.add_parser("voicemode", help="make voicemode play through this engine (the bridge), and watch it",
                        description="With the bridge on, voicemode's replies play through this engine's jitter "
                        "buffer and elastic playout: VOICEMODE_STREAM_BUFFER_MS, VOICEMODE_STREAM_MAX_BUFFER and "
                        "the WORKBENCH_* playout settings take effect, MP3, Opus and WAV play as they arrive, and "
                        "voicemode keeps its own controls, history, event log and metrics. Restart voicemode "
                        "after enabling or disabling.")
    vsub = vm.add_subparsers(dest="voicemode_command", metavar="ACTION", required=True)
    for name, text in (("enable", "turn the bridge on for the voicemode you run"),
                       ("disable", "turn it off: remove exactly what enable added"),
                       ("status", "on or off, for which voicemode, where the hook lives, the last reply")):
        p = vsub.add_parser(name, help=text, description=text)
        p.add_argument("--python", metavar="PATH",
                       help="voicemode's interpreter (default: the 'voicemode' command on PATH, then 'uv tool "
                       "install voice-mode')")
        if name == "status":
            p.add_argument("--json", action="store_true", help="as JSON")
    watch = vsub.add_parser("watch", help="print a line for each reply voicemode plays through the bridge",
                            description="Follows ~/.config/stream-workbench/voicemode/replies.jsonl: the figures "
                            "of each reply as the bridge played it. Ctrl-C to stop.")
    watch.add_argument("--last", type=int, default=5, metavar="N", help="first show the last N replies (default 5)")
    watch.add_argument("--once", action="store_true", help="show them and exit instead of following")
    return {"voicemode": cmd_voicemode}


def cmd_voicemode(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..usecases import bridge

    def say(text: str) -> None:
        print(text, file=stderr)

    try:
        if args.voicemode_command == "enable":
            bridge.enable(args.python, progress=say)
            print("the bridge is on: restart voicemode to play its replies through this engine", file=stdout)
            return 0
        if args.voicemode_command == "disable":
            was = bridge.disable(args.python, progress=say)
            print("the bridge is off: restart voicemode" if was else "the bridge was not on; nothing changed",
                  file=stdout)
            return 0
        if args.voicemode_command == "status":
            return _status(bridge.status(args.python), args.json, stdout)
    except bridge.BridgeError as exc:
        raise UserError(str(exc)) from None
    return _watch(args.last, args.once, stdout)


def _status(st: Any, as_json: bool, stdout: TextIO) -> int:
    if as_json:
        print(json.dumps(st.to_dict(), indent=2), file=stdout)
        return 0
    vm = st.voicemode
    print(f"bridge: {'on' if st.on else 'off'}", file=stdout)
    if vm is not None:
        print(f"voicemode: {vm.version or 'not installed'} ({vm.found_by}: {vm.python})", file=stdout)
    if st.pth is not None and st.on:
        print(f"hook: {st.pth}", file=stdout)
    if st.manifest is not None and st.manifest.installed:
        print(f"installed by enable: {', '.join(st.manifest.installed)}", file=stdout)
    if st.last_reply is not None:
        print(f"last reply: {reply_line(st.last_reply)}", file=stdout)
    if st.problem:
        print(f"problem: {st.problem}", file=stdout)
    return 0


def reply_line(f: Any) -> str:
    """One reply as the bridge played it, on one line."""
    when = time.strftime("%H:%M:%S", time.localtime(f.at))
    sound = "-" if f.first_write_to_sound_ms is None else f"{f.first_write_to_sound_ms:.0f} ms"
    stretch = f", stretched +{f.stretch_added_ms:.0f}/-{f.stretch_removed_ms:.0f} ms" if f.playout == "elastic" else ""
    paused = f", paused {f.paused_ms / 1000:.1f} s" if f.paused_ms else ""
    return (f"{when}  {f.format:<4} {f.played_ms / 1000:5.1f} s  {f.state:<7}  first sound {sound} after its first "
            f"audio, {f.underruns} underruns ({f.underrun_ms:.0f} ms){stretch}{paused}, buffer "
            f"{f.buffer_target_ms:.0f} ms")


def _watch(last: int, once: bool, stdout: TextIO) -> int:
    from ..bridge.publish import folder, read_replies

    seen = 0
    replies = read_replies()
    if not replies and once:
        print(f"no replies yet (the bridge writes them to {folder() / 'replies.jsonl'})", file=stdout)
        return 0
    for f in replies[-last:] if last > 0 else []:
        print(reply_line(f), file=stdout, flush=True)
    seen = _count(folder())
    if once:
        return 0
    try:
        while True:
            time.sleep(0.5)
            now = _count(folder())
            if now < seen:  # rotated
                seen = 0
            if now > seen:
                for f in read_replies()[-(now - seen):]:
                    print(reply_line(f), file=stdout, flush=True)
                seen = now
    except KeyboardInterrupt:
        return 0


def _count(where: Path) -> int:
    try:
        with (where / "replies.jsonl").open("rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0
