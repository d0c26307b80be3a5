"""The `workbench` command line: one module per command group, sharing `common`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from ..engine.settings import SettingsError
from . import app, bench, play, presets, serve, system, verify, voicemode
from .common import Handler, UserError
from .play import play_text, render_metrics, render_status

__all__ = ["build_parser", "main", "play_text", "render_metrics", "render_status"]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Stream Workbench: make streamed text-to-speech start fast and play without a glitch.",
        epilog="Run 'workbench COMMAND --help' for a command's options. With no command (or only settings "
        "options, such as --base-url, --preset, --format, --network) it opens the workbench on the embedded server.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Handler] = {}
    for group in (play, serve, bench, system, app, presets, verify, voicemode):
        commands.update(group.register(sub))
    return parser, commands


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["tui", *argv]  # `workbench --format mp3` opens the workbench configured
    args = parser.parse_args(argv)
    try:
        return commands[args.command](args, stdout, stderr)
    except (UserError, SettingsError) as exc:
        print(f"workbench: error: {exc}", file=stderr)
        return 2
    except OSError as exc:  # the machine said no (a read-only folder, a full disk): a line, not a traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(f"workbench: error: cannot use{where}: {exc.strerror or exc}", file=stderr)
        return 1
    except KeyboardInterrupt:
        print("workbench: interrupted", file=stderr)
        return 130
