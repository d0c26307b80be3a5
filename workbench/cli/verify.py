"""`workbench verify`: what the engine reports against a recording of what the device played."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from ..engine.decoding.formats import NAMES as FORMATS
from .common import Handler, UserError, add_settings_options, endpoint_for, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "verify", help="check the engine's first-sound times and underruns against a recording of the device",
        description="Plays the test signal (and with --speech a spoken reply) through the audio device while "
        "recording an input: by default the PulseAudio/PipeWire monitor of the output, or any input you name "
        "(a loopback cable, or a microphone for the acoustic latency). Reports where the engine says sound "
        "started against where the recording has it, the gaps heard against the underruns reported, and the "
        "device's real output latency; offers to store the difference as a correction the engine applies.")
    p.add_argument("--input", metavar="DEVICE", help="record this input (a name or an index from "
                   "'python -m sounddevice') instead of the output's monitor")
    p.add_argument("--formats", default="pcm,mp3,opus", help="formats to check, comma-separated (default "
                   "pcm,mp3,opus; on the embedded server an MP3 without a LAME tag is checked too)")
    p.add_argument("--plays", type=int, default=3, help="plays per format (default 3)")
    p.add_argument("--speech", action="store_true", help="also play a spoken reply in each format")
    save = p.add_mutually_exclusive_group()
    save.add_argument("--save", action="store_true", help="store the measured correction without asking")
    save.add_argument("--no-save", action="store_true", help="do not offer to store it")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_settings_options(p)
    return {"verify": cmd_verify}


def cmd_verify(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..usecases.verify import VerifyError, render, run_verify, save_correction

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise UserError(f"--formats: unknown format {unknown[0]!r}; known: {', '.join(FORMATS)}" if unknown
                        else "--formats: name at least one format")
    if not 1 <= args.plays <= 50:
        raise UserError("--plays must be from 1 to 50")
    settings = settings_from_args(args)
    device: str | int | None = None
    if args.input is not None:
        device = int(args.input) if args.input.isdigit() else args.input

    def progress(text: str) -> None:
        print(f"verify: {text}", file=stderr, flush=True)

    try:
        with endpoint_for(settings) as base_url:
            result = asyncio.run(run_verify(settings, base_url, input_device=device, formats=formats,
                                            plays=args.plays, speech=args.speech,
                                            embedded=settings.uses_local_server, progress=progress))
    except VerifyError as exc:
        raise UserError(str(exc)) from None
    median = result.median_difference_ms
    if args.json:
        print(json.dumps({
            "input": result.input_name, "device": result.device, "reported_latency_ms": result.reported_latency_ms,
            "median_difference_ms": median, "gaps_agree": result.gaps_agree,
            "checks": [{"case": c.case, "engine_first_sound_ms": c.engine_ms, "heard_ms": c.heard_ms,
                        "difference_ms": c.difference_ms, "underruns": c.underruns, "gaps_heard_ms": c.gaps_heard,
                        "error": c.error} for c in result.checks]}, indent=2), file=stdout)
    else:
        print(render(result), file=stdout)
    if median is None:
        return 1
    stored = settings.latency_correction_ms
    if args.no_save or abs(median - stored) < 1.0:
        return 0
    ask = not args.save and sys.stdin.isatty() and not args.json
    if ask:
        answer = input(f"Store a correction of {median:+.1f} ms (WORKBENCH_LATENCY_CORRECTION_MS, now {stored:g}) "
                       "that the engine adds to the device's times? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    elif not args.save:
        print(f"to store the correction: workbench verify --save (it adds {median:+.1f} ms to the device's times)",
              file=stderr)
        return 0
    path: Path = save_correction(median)
    print(f"stored WORKBENCH_LATENCY_CORRECTION_MS={median:.1f} in {path}", file=stderr)
    return 0
