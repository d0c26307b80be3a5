"""The `workbench` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from .defaults import DEFAULT_TEXT
from .engine.metrics import PlayMetrics, Snapshot
from .engine.settings import FORMATS, LOCAL, NETWORKS, SPECS, Settings, SettingsError, format_value, load_settings

class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


# -- argument parsing ---------------------------------------------------------------------------------
def _add_settings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (override the environment and voicemode's .env files)")
    g.add_argument("--preset", type=Path, metavar="FILE", help="a voicemode-style .env file to apply")
    g.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint, or 'local' for the embedded server")
    g.add_argument("--format", choices=FORMATS, help="response format to ask for")
    g.add_argument("--voice", help="voice name (embedded server: alloy, nova, ..., or test-signal)")
    g.add_argument("--model", help="model name")
    g.add_argument("--speed", help="speaking speed, 0.25 to 4.0")
    g.add_argument("--buffer-ms", metavar="MS", help="initial buffer (VOICEMODE_STREAM_BUFFER_MS)")
    g.add_argument("--chunk-size", metavar="BYTES", help="download chunk size")
    g.add_argument("--max-buffer", metavar="SECONDS", help="maximum buffer (VOICEMODE_STREAM_MAX_BUFFER)")
    g.add_argument("--buffered", action="store_true", help="download everything, then play (streaming off)")
    g.add_argument("--sink", metavar="SINK", help="device, virtual, wav:PATH or auto (default)")
    g.add_argument("--network", choices=NETWORKS, help="simulate a network: lan, wifi, 4g, flaky, satellite")
    g.add_argument("--no-voicemode-env", action="store_true",
                   help="do not read ~/.voicemode/voicemode.env or a project .voicemode.env")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Stream Workbench: make streamed text-to-speech start fast and play without a glitch.",
        epilog="Run 'workbench COMMAND --help' for a command's options. With no command (or only settings "
        "options, such as --base-url, --preset, --format, --network) it opens the workbench on the embedded server.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    play = sub.add_parser("play", help="stream one text and report what a listener heard",
                          description="Stream TEXT through the engine and print its metrics.")
    play.add_argument("text", nargs="?", help="text to speak ('-' reads standard input; default: a sample)")
    _add_settings_options(play)
    out = play.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object with the metrics on stdout")
    out.add_argument("--record", metavar="PATH", help="also write exactly what was played to a WAV file")
    out.add_argument("--log", metavar="FILE", help="append the metrics as a JSON line (WORKBENCH_METRICS_LOG)")
    out.add_argument("--quiet", "-q", action="store_true", help="no live status line")

    serve = sub.add_parser("serve", help="run the embedded OpenAI-compatible TTS server",
                           description="Serve /v1/audio/speech (espeak-ng speech or a test signal) in all six "
                           "formats, paced like a local neural TTS.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8880, help="port (default 8880, as Kokoro-FastAPI)")
    serve.add_argument("--api-key", help="require this bearer key on every route (visible in 'ps': prefer "
                       "--api-key-file or WORKBENCH_SERVER_API_KEY)")
    serve.add_argument("--api-key-file", type=Path, metavar="FILE", help="require the bearer key in FILE (first line)")
    serve.add_argument("--test-knobs", action="store_true",
                       help="let requests set the server's realism and fault knobs (query or X-Workbench-Knobs): "
                       "for tests and benchmarks, never on a shared server")
    serve.add_argument("--ttfb-ms", type=float, help="time to first byte (default 150)")
    serve.add_argument("--pace", type=float, help="wall seconds per second of audio (default 0.2 = 5x real time)")
    serve.add_argument("--flush-ms", type=float, help="send bytes in bursts this far apart (default 40)")

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
    _add_settings_options(tune)

    settings = sub.add_parser("settings", help="show the settings in effect and where each came from")
    _add_settings_options(settings)
    settings.add_argument("--json", action="store_true", help="as JSON")

    sub.add_parser("devices", help="list audio output devices")

    shots = sub.add_parser("screenshots", help="regenerate the TUI pictures in screenshots/ (for the README)")
    shots.add_argument("--out", type=Path, default=Path("screenshots"), help="folder (default screenshots/)")

    tui = sub.add_parser("tui", help="open the workbench (the default when no command is given)",
                         description="The Textual workbench: play, watch the buffer, tune, compare, export presets.")
    tui.add_argument("--text", help="the text in the text box (default: a sample paragraph)")
    _add_settings_options(tui)

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
    _add_settings_options(export)
    apply = psub.add_parser("apply", help="merge a preset into voicemode's .env (diff first, backup kept)")
    apply.add_argument("preset", help="a shipped preset's name or a .env file")
    apply.add_argument("--to", type=Path, metavar="FILE", help="target file (default ~/.voicemode/voicemode.env)")
    apply.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    apply.add_argument("--dry-run", action="store_true", help="show the diff only")
    validate = psub.add_parser("validate", help="check preset files the way voicemode and the workbench read them")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")

    bench = sub.add_parser("bench", help="measure the engine against baselines taken in the same run",
                           description="Run a benchmark suite and write Markdown and JSON results.")
    bench.add_argument("suite", nargs="?", default="matrix",
                       choices=["matrix", "engine", "server", "formats", "tui", "adaptive", "chunks", "stress", "soak"],
                       help="matrix (default): formats x networks x settings x repeats against the buffered "
                       "and naive-streaming baselines, with a picture and a 30 s-reply headline; "
                       "engine: the engine's own cost; server: the embedded server's speed; "
                       "stress: N concurrent MP3 players (--streams); soak: resident memory over an hour-long stream "
                       "(--minutes, --speed); "
                       "formats: TTFA, bytes to first audio, decode speed and CPU for every format; "
                       "tui: underruns and device underflows headless and with the workbench open; "
                       "adaptive: fixed 150 ms against the adaptive target on simulated networks; "
                       "chunks: TTFA and underruns by VOICEMODE_STREAM_CHUNK_SIZE")
    bench.add_argument("--plays", type=int, default=None,
                       help="plays per configuration (default 10; the matrix: 5 repeats per cell)")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run under a minute (matrix: pcm and mp3 on 4g, one repeat, "
                       "a short text and headline; other suites: 3 plays)")
    matrix = bench.add_argument_group("matrix options")
    matrix.add_argument("--formats", default=None, help="formats, comma-separated (default pcm,mp3,opus)")
    matrix.add_argument("--networks", default=None,
                        help="network profiles, comma-separated (default lan,wifi,4g,flaky; also for 'adaptive')")
    matrix.add_argument("--settings", dest="matrix_settings", default=None, metavar="LIST",
                        help="settings to compare, comma-separated: initial buffers in ms (fixed), 'adaptive', "
                        "'preset:NAME' (default 150,300,adaptive)")
    matrix.add_argument("--base-url", dest="bench_base_url", default=None, metavar="URL",
                        help="measure this OpenAI-compatible endpoint instead of the embedded server")
    matrix.add_argument("--pace", type=float, default=0.9,
                        help="the embedded server's wall seconds per second of audio (default 0.9: 1.1x real time)")
    matrix.add_argument("--no-headline", action="store_true", help="skip the 30 s reply")
    stress = bench.add_argument_group("stress and soak options")
    stress.add_argument("--streams", default=None, metavar="LIST",
                        help="stress: concurrent players to try, comma-separated (default 1,8,16,32; --quick 1,4)")
    stress.add_argument("--minutes", type=float, default=None,
                        help="soak: minutes of audio in the one long reply (default 60; --quick 3)")
    stress.add_argument("--speed", type=float, default=None,
                        help="soak: how much faster than real time the virtual sink plays (default 30; --quick 20)")
    bench.add_argument("--sink", choices=["virtual", "device"], default="virtual", help="where audio goes")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the results")
    bench.add_argument("--text", help="text to speak in every play (default: a ~8 s sentence)")
    return parser


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "base_url", None):
        url = args.base_url.strip()
        if url != LOCAL and not url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {url!r} is not an http(s) URL (or 'local')")
        overrides["base_urls"] = (url,)
    for flag, attr in (("format", "audio_format"), ("buffer_ms", "buffer_ms"), ("chunk_size", "chunk_size"),
                       ("max_buffer", "max_buffer_s"), ("speed", "speed"), ("sink", "sink"), ("network", "network")):
        value = getattr(args, flag, None)
        if value is not None:
            spec = next(s for s in SPECS if s.attr == attr)
            overrides[attr] = spec.convert(str(value), f"--{flag.replace('_', '-')}")
    if getattr(args, "voice", None):
        overrides["voices"] = (args.voice,)
    if getattr(args, "model", None):
        overrides["models"] = (args.model,)
    if getattr(args, "buffered", False):
        overrides["streaming_enabled"] = False
    if getattr(args, "log", None):
        overrides["metrics_log"] = args.log
    return load_settings(environ=environ, read_voicemode_files=not getattr(args, "no_voicemode_env", False),
                         preset=getattr(args, "preset", None), overrides=overrides)


# -- play ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def endpoint_for(settings: Settings) -> Iterator[str]:
    """The endpoint URL to use, starting the embedded server when none is configured."""
    if not settings.uses_local_server:
        yield settings.base_url
        return
    from .server.runner import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.base_url


class StatusLine:
    """A one-line live status on a terminal, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, notices: list[str] | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.notices = notices if notices is not None else []
        self.shown = 0
        self._last = 0.0
        self._width = 0

    def __call__(self, snap: Snapshot) -> None:
        while self.shown < len(self.notices):  # notices as soon as they are known, on their own lines
            self.clear()
            self.stream.write(f"note: {self.notices[self.shown]}\n")
            self.stream.flush()
            self.shown += 1
        if not self.enabled or snap.t_ms - self._last < 100:
            return
        self._last = snap.t_ms
        self.draw(render_status(snap))

    def draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def render_status(snap: Snapshot) -> str:
    cells = 12
    filled = min(cells, int(round(cells * snap.buffer_ms / max(snap.max_buffer_ms, 1.0))))
    bar = "█" * filled + "░" * (cells - filled)
    ttfa = f"{snap.ttfa_ms:.0f} ms" if snap.ttfa_ms is not None else "…"
    return (f"{snap.state.value:<10} buffer {bar} {snap.buffer_ms / 1000:4.2f} s (target {snap.target_ms:.0f} ms)  "
            f"TTFA {ttfa}  underruns {snap.underruns}  played {snap.played_ms / 1000:.1f}/"
            f"{snap.received_ms / 1000:.1f} s")


def render_metrics(m: PlayMetrics) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    rows = [
        ("format", f"{m.format} ({'streamed' if m.streaming else 'buffered'})"),
        ("network", m.network if m.network != "none" else "as it is (no simulation)"),
        ("sink", m.sink or "-"),
        ("state", m.state),
        ("TTFB (headers)", ms(m.ttfb_ms)),
        ("first byte", ms(m.first_byte_ms)),
        ("buffer ready", ms(m.buffer_ready_ms)),
        ("TTFA (first sound)", ms(m.ttfa_ms)),
        ("underruns", f"{m.underruns} ({m.underrun_ms:.0f} ms)"),
        ("device underflows", str(m.device_underflows)),
        ("buffer avg / min / max", f"{ms(m.avg_buffer_ms)} / {ms(m.min_buffer_ms)} / {ms(m.max_buffer_ms)}"),
        ("throughput", "-" if m.throughput_kbps is None else f"{m.throughput_kbps:.0f} kbit/s"),
        ("arrival pace", "-" if m.arrival_rtf is None else f"{m.arrival_rtf:.1f}x real time"),
        ("decode p95", "-" if m.decode_ms_p95 is None else f"{m.decode_ms_p95:.2f} ms"),
        ("audio", f"{m.audio_ms / 1000:.2f} s received, {m.played_ms / 1000:.2f} s played, {m.bytes} bytes"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


async def run_play(settings: Settings, text: str, *, record: str | None, status: StatusLine | None,
                   stderr: TextIO) -> PlayMetrics:
    from .engine.player import StreamPlayer, default_sink_factory

    with endpoint_for(settings) as base_url:
        player = StreamPlayer(settings, base_url=base_url,
                              sink_factory=lambda s: default_sink_factory(s, record=record))
        if status is not None:
            status.notices = player.notices
            player.add_observer(status)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, player.stop)
        try:
            metrics = await player.play(text)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            if status is not None:
                status.clear()
            await player.aclose()
        sink = player.sink
        if sink is not None and sink.recorder is not None:  # --record or a wav:PATH sink
            sink.recorder.save(sink.rate)
        return metrics


def cmd_play(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .engine.player import PlayError
    from .engine.sinks import SinkError

    settings = settings_from_args(args)
    text = play_text(args.text, sys.stdin, stderr)
    status = None if (args.quiet or args.json) else StatusLine(stderr)
    try:
        metrics = asyncio.run(run_play(settings, text, record=args.record, status=status, stderr=stderr))
    except (PlayError, SinkError) as exc:
        raise UserError(str(exc)) from None
    shown = status.shown if status is not None else 0
    for note in metrics.warnings[shown:]:
        print(f"note: {note}", file=stderr)
    if args.json:
        print(metrics.to_json(), file=stdout)
    elif not metrics.error or metrics.played_ms > 0:
        print(render_metrics(metrics), file=stdout)
    if metrics.error:
        print(f"workbench: error: {metrics.error}", file=stderr)
        return 1
    return 130 if metrics.state == "stopped" else 0


def play_text(arg: str | None, stdin: TextIO, stderr: TextIO) -> str:
    """What `play` says: the argument, standard input for '-' or when text is piped in, else the sample."""
    if arg == "-" or (arg is None and _piped(stdin)):
        if arg is None:
            print("note: reading the text from standard input (a pipe); give TEXT to speak something else",
                  file=stderr)
        try:
            text = stdin.read()
        except UnicodeDecodeError as exc:
            raise UserError(f"standard input is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at "
                            f"{exc.start}); fix its encoding or pipe it through iconv") from None
        if not text.strip():
            raise UserError("nothing to say: standard input was empty")
    else:
        text = arg if arg is not None else DEFAULT_TEXT
    bad = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:  # undecodable bytes in an argument arrive as lone surrogates
        raise UserError(f"the text is not valid UTF-8 (an undecodable byte at character {bad}); "
                        "fix its encoding or pipe it through iconv")
    if not text.strip():
        raise UserError("nothing to say: the text is empty")
    return text


def _piped(stdin: TextIO) -> bool:
    """True when standard input is a pipe or a file (text was sent in), not a terminal or /dev/null."""
    import stat as st

    try:
        mode = os.fstat(stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return st.S_ISFIFO(mode) or st.S_ISREG(mode)


def cmd_serve(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .server.app import Knobs
    from .server.runner import serve_forever

    knobs = Knobs()
    for flag, attr in (("ttfb_ms", "ttfb_ms"), ("pace", "pace"), ("flush_ms", "flush_ms")):
        value = getattr(args, flag)
        if value is not None:
            if value < 0:
                raise UserError(f"--{flag.replace('_', '-')} must not be negative")
            setattr(knobs, attr, value)
    api_key = _server_api_key(args)
    if not _is_loopback(args.host) and api_key is None:
        print(f"workbench: warning: serving on {args.host} with no API key: anyone who can reach this machine "
              "can use it (set WORKBENCH_SERVER_API_KEY or --api-key-file)", file=stderr)
    if args.test_knobs:
        print("workbench: test knobs are on: any client can make this server stall, drop or corrupt replies",
              file=stderr)
    print(f"embedded TTS server on http://{args.host}:{args.port}/v1 (Ctrl-C stops it)", file=stderr)
    try:
        serve_forever(args.host, args.port, knobs, api_key=api_key, test_knobs=args.test_knobs)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


SERVER_KEY_ENV = "WORKBENCH_SERVER_API_KEY"


def _server_api_key(args: argparse.Namespace) -> str | None:
    """The key `serve` requires: --api-key, else --api-key-file, else WORKBENCH_SERVER_API_KEY."""
    if args.api_key is not None and args.api_key_file is not None:
        raise UserError("give --api-key or --api-key-file, not both")
    key = args.api_key
    if args.api_key_file is not None:
        try:
            lines = args.api_key_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read --api-key-file {args.api_key_file}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
        key = lines[0].strip() if lines else ""
    elif key is None:
        key = os.environ.get(SERVER_KEY_ENV)
    if key is None:
        return None
    key = key.strip()
    if not key or any(not "!" <= c <= "~" for c in key):
        raise UserError("the server's API key must be printable ASCII without spaces, and not empty")
    return key


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_settings(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    settings = settings_from_args(args)
    rows = []
    for spec in SPECS:
        value = getattr(settings, spec.attr)
        shown = "(set)" if spec.attr == "api_key" and value else format_value(value) if value is not None else ""
        if spec.attr == "base_urls" and value is None:
            shown = "local (embedded server)"
        rows.append((spec.env, shown, settings.origins.get(spec.attr, "default")))
    if args.json:
        print(json.dumps({env: {"value": v, "from": o} for env, v, o in rows}, indent=2), file=stdout)
        return 0
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    for env, value, origin in rows:
        print(f"{env:<{w1}}  {value:<{w2}}  {origin}", file=stdout)
    return 0


def cmd_devices(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .engine.sinks import SinkError, _import_sounddevice

    try:
        sd = _import_sounddevice()
        devices = sd.query_devices()
    except SinkError as exc:
        raise UserError(str(exc)) from None
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    if not outputs:
        print("no audio output devices; use --sink virtual", file=stdout)
        return 0
    default = sd.default.device[1]
    for d in outputs:
        mark = "*" if d["index"] == default else " "
        print(f"{mark} {d['index']:>3}  {d['name']}  ({int(d['default_samplerate'])} Hz)", file=stdout)
    return 0


def cmd_bench(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .bench import run_bench

    if args.suite == "matrix":
        return _bench_matrix(args, stdout, stderr)
    if args.suite in ("stress", "soak"):
        return _bench_stress(args, stdout, stderr)
    plays = args.plays if args.plays is not None else (3 if args.quick else 10)
    if plays < 1:
        raise UserError("--plays must be at least 1")
    try:
        from .bench_matrix import parse_list
        from .engine.network import PROFILES

        networks = tuple(parse_list(args.networks, list(PROFILES), "network profile")) \
            if args.networks and args.suite == "adaptive" else None
        report = run_bench(args.suite, plays, args.sink, args.out, stderr, quick=args.quick, networks=networks,
                           **({"text": args.text} if args.text else {}))
    except (RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(report.markdown(), file=stdout)
    print(f"results: {args.out / (args.suite + '.md')} and {args.out / (args.suite + '.json')}", file=stderr)
    return 0


def _bench_stress(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .bench import progress_printer, write_report
    from .bench_stress import bench_soak, bench_stress

    progress = progress_printer(args.suite, stderr)
    try:
        if args.suite == "stress":
            spec = args.streams or ("1,4" if args.quick else "1,8,16,32")
            try:
                counts = tuple(int(x) for x in spec.split(",") if x.strip())
            except ValueError:
                raise UserError(f"--streams wants whole numbers, comma-separated, not {spec!r}") from None
            if not counts or min(counts) < 1 or max(counts) > 128:
                raise UserError("--streams: each count must be from 1 to 128")
            report = bench_stress(counts, progress, **({"text": args.text} if args.text else {}))
        else:
            minutes = args.minutes if args.minutes is not None else (3.0 if args.quick else 60.0)
            speed = args.speed if args.speed is not None else (20.0 if args.quick else 30.0)
            if minutes <= 0 or not 1 <= speed <= 200:
                raise UserError("--minutes must be more than 0 and --speed from 1 to 200")
            report = bench_soak(minutes, speed, progress)
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    write_report(report, args.suite, args.out, stderr)
    print(report.markdown(), file=stdout)
    print(f"results: {args.out / (args.suite + '.md')} and {args.out / (args.suite + '.json')}", file=stderr)
    return 0


def _bench_matrix(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .bench import progress_printer, write_report
    from . import presets as pr
    from .bench_matrix import QUICK_TEXT, LONG_TEXT, MatrixConfig, parse_list, parse_settings, run_matrix, write_plot
    from .engine.network import PROFILES
    from .engine.decoders import PROGRESSIVE_FORMATS

    quick = args.quick
    try:
        cfg = MatrixConfig(
            formats=parse_list(args.formats or ("pcm,mp3" if quick else "pcm,mp3,opus"), PROGRESSIVE_FORMATS, "format"),
            networks=parse_list(args.networks or ("4g" if quick else "lan,wifi,4g,flaky"), list(PROFILES),
                                "network profile"),
            settings=parse_settings(args.matrix_settings or ("150,adaptive" if quick else "150,300,adaptive")),
            repeats=args.plays if args.plays is not None else (1 if quick else 5),
            text=args.text or (QUICK_TEXT if quick else MatrixConfig.text),
            long_text=None if args.no_headline else (QUICK_TEXT if quick else LONG_TEXT),
            long_repeats=1 if quick else 2,
            base_url=args.bench_base_url, pace=args.pace)
    except (ValueError, pr.PresetError) as exc:
        raise UserError(str(exc)) from None
    if cfg.repeats < 1:
        raise UserError("--plays must be at least 1")
    if cfg.pace <= 0:
        raise UserError("--pace must be more than 0")
    try:
        report = run_matrix(cfg, progress_printer("matrix", stderr))
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    write_report(report, "matrix", args.out, stderr)
    plot = write_plot(report, args.out)
    print(report.markdown(), file=stdout)
    print(f"results: {args.out / 'matrix.md'}, {args.out / 'matrix.json'} and {plot}", file=stderr)
    return 0


def cmd_tune(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from . import presets as pr
    from .bench import progress_printer
    from .tune import TuneFailed, tune

    settings = settings_from_args(args)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.pace <= 0:
        raise UserError("--pace must be more than 0")
    name = args.name or f"tuned-{settings.audio_format}-{settings.network}"
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
    print(f"{settings.audio_format} on '{settings.network}': initial buffer {result.buffer_ms} ms, max buffer "
          f"{result.max_buffer_s:g} s, TTFA {result.ttfa_ms:.0f} ms ({result.plays} plays)", file=stdout)
    print(f"wrote {output} (workbench preset apply {output} puts it in voicemode's .env)", file=stderr)
    return 0


TUNE_TEXT = "Streaming speech has to start quickly and keep going when the network stalls."


def cmd_tui(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    settings = settings_from_args(args)
    if not (sys.stdin.isatty() and stdout.isatty()):
        raise UserError("the workbench needs a terminal; for a one-shot run without one, use 'workbench play'")
    from .tui.app import AppConfig, create_app

    config = AppConfig(settings=settings, text=args.text or DEFAULT_TEXT)
    create_app(config).run()
    return 0


def cmd_screenshots(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .tui.scenes import SCENES, save_screenshots

    paths = asyncio.run(save_screenshots(args.out))
    for scene, path in zip(SCENES, paths, strict=True):
        print(f"{path}  {scene.description}", file=stdout)
    return 0


def cmd_preset(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from . import presets as pr

    action = args.preset_command
    try:
        if action == "list":
            for path in pr.shipped_presets():
                about = pr.load_preset(path).description
                print(f"{path.stem:<14} {about[1] if len(about) > 1 else ''}", file=stdout)
            return 0
        if action == "show":
            preset = pr.load_preset(args.preset)
            print(f"# file: {preset.path}", file=stderr)
            stdout.write(preset.text())
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


COMMANDS = {"tune": cmd_tune, "bench": cmd_bench, "devices": cmd_devices, "play": cmd_play, "preset": cmd_preset, "screenshots": cmd_screenshots,
            "serve": cmd_serve, "settings": cmd_settings, "tui": cmd_tui}


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["tui", *argv]  # `workbench --format mp3` opens the workbench configured
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args, stdout, stderr)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
