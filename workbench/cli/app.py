"""`workbench` (the TUI) and `workbench screenshots`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from ..defaults import DEFAULT_TEXT
from .common import Handler, UserError, add_settings_options, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    shots = sub.add_parser("screenshots", help="regenerate the TUI pictures in screenshots/ (for the README)",
                           description="Take the README's pictures of the workbench from real plays on the "
                           "embedded server (silent: a virtual sink at real time; about two minutes), or, with "
                           "--scenes, the fixed scenes the snapshot tests compare against.")
    shots.add_argument("--out", type=Path, default=Path("screenshots"), help="folder (default screenshots/)")
    shots.add_argument("--scenes", action="store_true", help="the fixed scenes instead of real plays")
    shots.add_argument("--only", action="append", metavar="NAME", help="only this picture (repeatable)")
    tui = sub.add_parser("tui", help="open the workbench (the default when no command is given)",
                         description="The Textual workbench: play, watch the buffer, tune, compare, export presets.")
    tui.add_argument("--text", help="the text in the text box (default: a sample paragraph)")
    tui.add_argument("--out", type=Path, metavar="DIR", help="where exported presets and compare results go "
                     "(default: ~/.local/share/stream-workbench, or under $XDG_DATA_HOME)")
    add_settings_options(tui)
    return {"screenshots": cmd_screenshots, "tui": cmd_tui}


def cmd_tui(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    settings = settings_from_args(args)
    if not (sys.stdin.isatty() and stdout.isatty()):
        raise UserError("the workbench needs a terminal; for a one-shot run without one, use 'workbench play'")
    from ..tui.app import AppConfig, create_app

    config = AppConfig(settings=settings, text=args.text or DEFAULT_TEXT)
    if args.out is not None:
        config.save_dir = args.out
    create_app(config).run()
    return 0


def cmd_screenshots(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.scenes:
        from ..tui.scenes import SCENES, save_screenshots

        paths = asyncio.run(save_screenshots(args.out))
        for scene, path in zip(SCENES, paths, strict=True):
            print(f"{path}  {scene.description}", file=stdout)
        return 0
    from ..tui.shots import SHOTS, take_shots

    known = [s.name for s in SHOTS]
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        raise UserError(f"no picture named {unknown[0]!r}; the pictures are: {', '.join(known)}")
    paths = asyncio.run(take_shots(args.out, args.only, progress=lambda text: print(text, file=stderr)))
    for path in paths:
        print(path, file=stdout)
    return 0
