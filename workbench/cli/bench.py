"""`workbench bench` and `workbench tune`: measured figures, and a buffer found by measurement."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any, TextIO

from ..bench.suites import SUITES
from ..engine.settings import LOCAL, PlayerKind
from .common import Handler, UserError, add_settings_options, endpoint_for, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    tune = sub.add_parser("tune", help="find the smallest initial buffer that plays K repeats clean; write a preset",
                          description="Play K times to see what buffer the network needs, verify it on K more "
                          "plays (fresh network dice), raise it until none underruns, find the smallest max "
                          "buffer (fixed buffering only), and write the result as a preset voicemode reads. "
                          "Plays go to a virtual sink.")
    tune.add_argument("--repeats", "-k", type=int, default=None, help="plays per step (default 5; --quick: 2)")
    tune.add_argument("--text", help="text to speak in every play (default: a ~5 s sentence)")
    tune.add_argument("--output", "-o", type=Path, metavar="FILE",
                      help="where to write the preset (default tuned-FORMAT-NETWORK.env)")
    tune.add_argument("--force", action="store_true", help="replace FILE if it exists")
    tune.add_argument("--name", help="name in the preset's header (default tuned-FORMAT-NETWORK)")
    tune.add_argument("--pace", type=float, default=0.9,
                      help="the embedded server's wall seconds per second of audio (default 0.9: 1.1x real time)")
    tune.add_argument("--quick", action="store_true", help="2 repeats (unless --repeats) and a short text: a smoke run")
    add_settings_options(tune)
    bench = sub.add_parser("bench", help="measure the engine against baselines taken in the same run",
                           description="Run a benchmark suite and write Markdown and JSON results.")
    bench.add_argument("suite", nargs="?", default="matrix", choices=list(SUITES),
                       help="; ".join(f"{s.name}: {s.help}" for s in SUITES.values()))
    bench.add_argument("--plays", type=int, default=None,
                       help="plays per configuration (default 10; the matrix: 5 repeats per cell)")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run under a minute (matrix: pcm and mp3 on 4g, one repeat, "
                       "a short text and headline; other suites: 3 plays)")
    matrix = bench.add_argument_group("matrix options")
    matrix.add_argument("--formats", default=None, help="formats, comma-separated (default pcm,mp3,opus); auto: "
                        "--format auto, its choice learned over each cell's plays")
    matrix.add_argument("--networks", default=None,
                        help="network profiles, comma-separated (default lan,wifi,4g,flaky; also for 'adaptive')")
    matrix.add_argument("--settings", dest="matrix_settings", default=None, metavar="LIST",
                        help="settings to compare, comma-separated: initial buffers in ms (fixed), 'adaptive', "
                        "'preset:NAME' (default 150,300,adaptive); split: off, sentence, auto (default off,sentence); "
                        "soak: off or sentence (the long reply asked for a fragment at a time); heard: the servers, "
                        "fast, jittery, slow (default all three)")
    matrix.add_argument("--players", default=None, metavar="LIST",
                        help="who plays, comma-separated: workbench (this engine, the default) and voicemode "
                        "(voicemode 9.0's playback, modelled: a 'voicemode 9.0' column, with ratios against it); "
                        "heard: naive, fixed, elastic (default all three)")
    matrix.add_argument("--base-url", dest="bench_base_url", default=None, metavar="URL",
                        help="measure this OpenAI-compatible endpoint instead of the embedded server (matrix, split)")
    matrix.add_argument("--pace", type=float, default=None,
                        help="the embedded server's wall seconds per second of audio (matrix: default 0.9, 1.1x "
                        "real time; split: default 0.33, 3x)")
    matrix.add_argument("--no-headline", action="store_true", help="skip the 30 s reply")
    stress = bench.add_argument_group("stress and soak options")
    stress.add_argument("--streams", default=None, metavar="LIST",
                        help="stress: concurrent players to try, comma-separated (default 1,8,16,32; --quick 1,4)")
    stress.add_argument("--minutes", type=float, default=None,
                        help="soak: minutes of audio in the one long reply (default 60; --quick 3)")
    stress.add_argument("--speed", type=float, default=None,
                        help="soak: how much faster than real time the virtual sink plays (default 30; --quick 20)")
    bench.add_argument("--sink", choices=["virtual", "device", "device-python"], default="virtual",
                       help="where audio goes (device-python: the sound card with the audio callback in Python, "
                       "to measure it against the C one)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the results")
    bench.add_argument("--text", help="text to speak in every play (default: a ~8 s sentence)")
    return {"tune": cmd_tune, "bench": cmd_bench}


def cmd_bench(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..bench.suites import BenchOptions, run_suite

    options = BenchOptions(
        plays=args.plays, quick=args.quick, sink=args.sink, out=args.out, text=args.text, formats=args.formats,
        networks=args.networks, settings=args.matrix_settings, base_url=args.bench_base_url, pace=args.pace,
        headline=not args.no_headline, streams=args.streams, minutes=args.minutes, speed=args.speed,
        players=args.players)
    try:
        report, paths = run_suite(args.suite, options, stderr)
    except (ValueError, RuntimeError) as exc:  # BenchError is a ValueError: an option it cannot use
        raise UserError(str(exc)) from None
    print(report.markdown(), file=stdout)
    print(f"results: {', '.join(str(p) for p in paths[:-1])} and {paths[-1]}", file=stderr)
    return 0


def cmd_tune(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..bench.harness import progress_printer
    from ..engine.vmplayer import VOICEMODE_VERSION
    from ..usecases import presets as pr
    from ..usecases.tune import TuneFailed, tune

    settings = settings_from_args(args)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.pace <= 0:
        raise UserError("--pace must be more than 0")
    name = args.name or (f"tuned-voicemode-{settings.network}" if settings.player is PlayerKind.VOICEMODE
                         else f"tuned-{settings.audio_format}-{settings.network}")
    output = args.output or Path(f"{name}.env")
    if output.exists() and not args.force:  # before minutes of playing, not after
        raise UserError(f"{output} already exists; choose another --output or add --force")
    text = args.text or ("A quick tuning check." if args.quick else TUNE_TEXT)
    query = {"pace": f"{args.pace:g}"} if settings.base_url == LOCAL else None

    async def go() -> Any:
        with endpoint_for(settings) as base_url:
            return await tune(settings, base_url, repeats, text, progress_printer("tune", stderr), extra_query=query)

    try:
        result = asyncio.run(go())
    except (TuneFailed, ValueError) as exc:
        raise UserError(str(exc)) from None
    if stderr.isatty():
        stderr.write("\r\033[K")
    preset = result.preset(name)
    try:
        pr.save_preset(preset, output, overwrite=args.force)
    except pr.PresetError as exc:
        raise UserError(str(exc)) from None
    for step in result.steps:
        print(step, file=stdout)
    if result.player == "voicemode":
        print(f"for voicemode {VOICEMODE_VERSION} on '{settings.network}': {result.settings.audio_format}, chunk "
              f"{result.settings.chunk_size} B, first sound {result.first_sound_ms:.0f} ms ({result.plays} plays)",
              file=stdout)
    else:
        print(f"{settings.audio_format} on '{settings.network}': initial buffer {result.buffer_ms} ms, max buffer "
              f"{result.max_buffer_s:g} s, TTFA {result.ttfa_ms:.0f} ms"
              + (f", first sound {result.first_sound_ms:.0f} ms" if result.first_sound_ms is not None else "")
              + f" ({result.plays} plays)", file=stdout)
    if result.pace_note:
        print(result.pace_note, file=stderr)
    print(f"wrote {output} (workbench preset apply {output} puts it in voicemode's .env)", file=stderr)
    return 0


TUNE_TEXT = "Streaming speech has to start quickly and keep going when the network stalls."
