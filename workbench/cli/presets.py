"""`workbench preset`: list, show, export, apply and validate voicemode presets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from .common import Handler, UserError, add_settings_options, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    preset = sub.add_parser("preset", help="show, export, apply or validate voicemode presets",
                            description="Presets are .env files voicemode reads as they are. Shipped ones: "
                            "see 'workbench preset list'.")
    psub = preset.add_subparsers(dest="preset_command", metavar="ACTION", required=True)
    psub.add_parser("list", help="list the shipped presets")
    show = psub.add_parser("show", help="print a preset (a shipped name or a file), validated")
    show.add_argument("preset", help="a shipped preset's name (lan, wifi, ...) or a .env file")
    export = psub.add_parser("export", help="write the settings in effect as a preset")
    export.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here instead of stdout")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.add_argument("--name", default="exported", help="name in the preset's header")
    add_settings_options(export)
    apply = psub.add_parser("apply", help="merge a preset into voicemode's .env (diff first, backup kept)")
    apply.add_argument("preset", help="a shipped preset's name or a .env file")
    apply.add_argument("--to", type=Path, metavar="FILE", help="target file (default ~/.voicemode/voicemode.env)")
    apply.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    apply.add_argument("--dry-run", action="store_true", help="show the diff only")
    validate = psub.add_parser("validate", help="check preset files the way voicemode and the workbench read them")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return {"preset": cmd_preset}


def cmd_preset(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..usecases import presets as pr

    action = args.preset_command
    try:
        if action == "list":
            for path in pr.shipped_presets():
                about = pr.load_preset(path).summary
                print(f"{path.stem:<16} {about}", file=stdout)
            return 0
        if action == "show":
            preset = pr.load_preset(args.preset)
            print(f"# file: {preset.path}", file=stderr)
            stdout.write(preset.text())
            _notes(preset, stderr)
            return 0
        if action == "export":
            if args.output is not None and args.output.exists() and not args.output.is_dir() and not args.force:
                raise UserError(f"{args.output} already exists; add --force to replace it, or choose another -o")
            preset = pr.preset_from_settings(settings_from_args(args), args.name,
                                             [f"Stream Workbench preset: {args.name}",
                                              "Plain KEY=value lines: voicemode reads this file as it is."])
            if args.output is None:
                stdout.write(preset.text())
            else:
                pr.save_preset(preset, args.output, overwrite=args.force)
                print(f"wrote {args.output}", file=stderr)
            _notes(preset, stderr)
            return 0
        if action == "validate":
            bad = 0
            for path in args.files:
                try:
                    real, text = pr.read_preset_text(path)
                    problems = pr.preset_problems(text, real)
                except pr.PresetError as exc:
                    problems = [str(exc)]
                if problems:
                    bad += 1
                    for problem in problems:
                        print(f"invalid  {problem}", file=stdout)
                else:
                    print(f"ok       {path} ({len(pr.parse_preset(text, real).values)} settings)", file=stdout)
            return 1 if bad else 0
        # apply
        preset = pr.load_preset(args.preset)
        target = args.to or pr.voicemode_env_path()
        plan = pr.plan_apply(preset, target)
        _notes(preset, stderr)
        if plan.skipped:
            print(f"left out (workbench only): {', '.join(plan.skipped)}", file=stderr)
        if not plan.has_changes:
            print(f"{target} already has these values; nothing to do", file=stderr)
            return 0
        stdout.write(plan.diff)
        if args.dry_run:
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise UserError("not applied: pass --yes to apply without a terminal to confirm on")
            answer = input(f"apply to {target}? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("not applied", file=stderr)
                return 1
        backup = pr.write_apply(plan)
        link = f" (a link: wrote {plan.real_target})" if plan.real_target else ""
        where = f" (backup: {backup})" if backup else ""
        print(f"applied to {target}{link}{where}; restart voicemode to pick it up", file=stderr)
        return 0
    except pr.PresetError as exc:
        raise UserError(str(exc)) from None


def _notes(preset: Any, stderr: TextIO) -> None:
    """What the targeted voicemode does with each key: a preset never claims more than voicemode does."""
    from ..usecases.voicemode import target

    print(f"what voicemode {target().version} does with each key:", file=stderr)
    for line in preset.voicemode_notes():
        print(f"  {line}", file=stderr)
