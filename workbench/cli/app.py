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
    shots = sub.add_parser("screenshots", help="regenerate the TUI pictures in screenshots/ (for the README)")
    shots.add_argument("--out", type=Path, default=Path("screenshots"), help="folder (default screenshots/)")
    tui = sub.add_parser("tui", help="open the workbench (the default when no command is given)",
                         description="The Textual workbench: play, watch the buffer, tune, compare, export presets.")
    tui.add_argument("--text", help="the text in the text box (default: a sample paragraph)")
    add_settings_options(tui)
    return {"screenshots": cmd_screenshots, "tui": cmd_tui}


def cmd_tui(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    settings = settings_from_args(args)
    if not (sys.stdin.isatty() and stdout.isatty()):
        raise UserError("the workbench needs a terminal; for a one-shot run without one, use 'workbench play'")
    from ..tui.app import AppConfig, create_app

    config = AppConfig(settings=settings, text=args.text or DEFAULT_TEXT)
    create_app(config).run()
    return 0


def cmd_screenshots(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..tui.scenes import SCENES, save_screenshots

    paths = asyncio.run(save_screenshots(args.out))
    for scene, path in zip(SCENES, paths, strict=True):
        print(f"{path}  {scene.description}", file=stdout)
    return 0
