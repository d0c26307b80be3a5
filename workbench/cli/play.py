"""`workbench play`: stream one text and report what a listener heard."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import sys
from typing import Any, TextIO

from ..defaults import DEFAULT_TEXT
from ..engine.decoding.layout import Layout
from ..engine.figures.metrics import FIGURES, PlayMetrics, Snapshot
from ..engine.settings import PlayerKind, Settings
from .common import Handler, UserError, add_settings_options, endpoint_for, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    play = sub.add_parser("play", help="stream one text and report what a listener heard",
                          description="Stream TEXT through the engine and print its metrics.")
    play.add_argument("text", nargs="?", help="text to speak ('-' reads standard input; default: a sample)")
    add_settings_options(play)
    out = play.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object with the metrics on stdout")
    out.add_argument("--record", metavar="PATH", help="also write exactly what was played to a WAV file")
    out.add_argument("--log", metavar="FILE", help="append the metrics as a JSON line (WORKBENCH_METRICS_LOG)")
    out.add_argument("--quiet", "-q", action="store_true", help="no live status line")
    play.add_argument("--no-cache", action="store_true", help="ask the endpoint even for a reply heard before, "
                      "and store nothing (WORKBENCH_CACHE=false; the cache is in ~/.cache/stream-workbench/replies)")
    return {"play": cmd_play}


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
    filled = min(cells, int(round(cells * snap.level_ms / max(snap.max_buffer_ms, 1.0))))
    bar = "█" * filled + "░" * (cells - filled)
    ttfa = f"{snap.ttfa_ms:.0f} ms" if snap.ttfa_ms is not None else "…"
    return (f"{snap.state.value:<10} buffer {bar} {snap.level_ms / 1000:4.2f} s (target {snap.target_ms:.0f} ms)  "
            f"TTFA {ttfa}  underruns {snap.underruns}  played {snap.played_ms / 1000:.1f}/"
            f"{snap.received_ms / 1000:.1f} s")


def _playout(m: PlayMetrics) -> str:
    if m.playout != "elastic":
        return "fixed (waits for the buffer, then plays at 1.0x)"
    out = (f"elastic: {m.stretched_pct:.0f}% of the audio stretched, rate {m.min_rate:.2f}x to {m.max_rate:.2f}x, "
           f"+{m.stretch_added_ms:.0f} / -{m.stretch_removed_ms:.0f} ms")
    if m.stretch_in_pauses_pct is not None:
        out += f" ({m.stretch_in_pauses_pct:.0f}% of it in pauses)"
    if m.speech_off_tempo_pct is not None:
        out += f"; speech outside 0.95-1.05x: {m.speech_off_tempo_pct:.1f}%"
    return out


def pcm_description(m: PlayMetrics) -> str:
    """Headerless PCM: the rate and channels it was played as, and where the rate came from."""
    if m.pcm_rate is None:
        return ""
    whence = {"default": "the default; the response did not say"}.get(m.pcm_from or "", m.pcm_from)
    return f", {m.pcm_rate} Hz {'mono' if m.pcm_channels == 1 else f'{m.pcm_channels} channels'} ({whence})"


def _first_sound(m: PlayMetrics) -> str:
    if m.first_sound_ms is None:
        return "-"
    out = f"{m.first_sound_ms:.0f} ms ({m.leading_silence_ms or 0:.0f} ms of silence after the first sample"
    if m.silence_skipped_ms:
        out += f"; {m.silence_skipped_ms:.0f} ms more skipped"
    if m.priming_ms:
        how = "from the stream's tag" if m.priming == "tag" else "no tag: its near-silent part"
        out += f"; {m.priming_ms:.0f} ms of codec priming trimmed, {how}"
    return out + ")"


def _cache(m: PlayMetrics) -> str:
    if m.cache == "hit":
        return "played from the reply cache: no request (--no-cache asks the endpoint)"
    return "not in the reply cache" + ("; stored there now" if m.cache_stored else "")


def _channels(m: PlayMetrics) -> str:
    names = {None: "the reply", 1: "a mono stream", 2: "a stereo stream"}
    stream = names.get(m.channels, f"a {m.channels}-channel stream")
    if m.output_channels == 1:
        if (m.channels or 1) > 1:
            return f"{stream}, averaged to mono (--channels stereo keeps its channels)"
        return "mono" + (" (the device has one output channel: the voice is not placed)" if m.pan is not None else "")
    if m.pan is not None and (m.channels or 1) == 1:
        left, right = Layout(2, m.pan).gains
        return f"stereo: {stream} placed at {m.pan:+.2f} (gain left {left:.2f}, right {right:.2f})"
    if m.channels == 1:
        return f"stereo: {stream}, the same in both channels"
    return f"stereo: {stream}, its own channels" + (" (a placed voice must be mono)" if m.pan is not None else "")


def _underflows(m: PlayMetrics) -> str:
    if not m.sink.startswith("virtual"):
        return str(m.device_underflows)
    late = f" (its clock fell behind {m.clock_late} time{'' if m.clock_late == 1 else 's'}: a busy machine)" \
        if m.clock_late else ""
    return "none: the virtual sink has no sound card" + late


def _played_note(m: PlayMetrics) -> str:
    """Why the time played is not the time received: elastic playout's slowing and speeding up, or a stop."""
    net = m.stretch_added_ms - m.stretch_removed_ms
    if m.state == "stopped":
        return " (stopped)"
    if abs(net) >= 5:
        how = "added by slowing" if net > 0 else "taken by speeding up"
        return f" ({abs(net) / 1000:.2f} s {how}: elastic playout)"
    return ""


def render_metrics(m: PlayMetrics) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    label = {f.field: f.label for f in FIGURES}
    rows = [
        ("format", f"{m.format} ({'streamed' if m.streaming else 'buffered'})" + pcm_description(m)),
        *([("format chosen", f"--format auto: {m.auto_format}")] if m.auto_format else []),
        ("network", m.network if m.network != "none" else "as it is (no simulation)"),
        ("sink", m.sink or "-"),
        *([("channels", _channels(m))] if m.output_channels > 1 or (m.channels or 1) > 1 or m.pan is not None else []),
        *([("cache", _cache(m))] if m.cache != "off" else []),
        ("state", m.state),
        ("playout", _playout(m)),
        *((label[f], ms(getattr(m, f))) for f in ("request_sent_ms", "ttfb_ms", "first_byte_ms", "buffer_ready_ms",
                                                   "ttfa_ms")),
        (label["first_sound_ms"], _first_sound(m)),
        (label["underruns"], f"{m.underruns} ({m.underrun_ms:.0f} ms)"),
        (label["device_underflows"], _underflows(m)),
        ("buffer avg / min / max", f"{ms(m.avg_buffer_ms)} / {ms(m.min_buffer_ms)} / {ms(m.max_buffer_ms)}"),
        (label["throughput_kbps"], "-" if m.throughput_kbps is None else f"{m.throughput_kbps:.0f} kbit/s"),
        (label["arrival_rtf"], "-" if m.arrival_rtf is None else f"{m.arrival_rtf:.1f}x real time"),
        (label["decode_ms_p95"], "-" if m.decode_ms_p95 is None else f"{m.decode_ms_p95:.2f} ms"),
        ("audio", f"{m.audio_ms / 1000:.2f} s received, {m.played_ms / 1000:.2f} s played{_played_note(m)}, "
                  f"{m.bytes} bytes"),
    ]
    if m.fragments > 1:
        ttfbs = ", ".join("-" if t is None else f"{t:.0f}" for t in m.fragment_ttfb_ms)
        formats = f"; formats {', '.join(m.fragment_formats)}" if len(set(m.fragment_formats)) > 1 else ""
        rows.append((label["fragments"], f"{m.fragments} (split: {m.split}; TTFB of each {ttfbs} ms{formats})"))
        rows.append(("joins", f"longest {ms(m.join_gap_ms)} (its pause and any wait), longest wait "
                              f"{ms(m.join_wait_ms)}"))
    if m.retries:
        rows.append((label["retries"], f"{m.retries} ({m.reconnects} after the server had answered)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


async def run_play(settings: Settings, text: str, *, record: str | None, status: StatusLine | None,
                   stderr: TextIO) -> PlayMetrics:
    from ..engine.fetching.cache import ReplyCache
    from ..engine.fetching.endpoints import EndpointMemory
    from ..engine.output.sinkfactory import sink_factory
    from ..engine.player import StreamPlayer
    from ..engine.vmplayer import VoicemodePlayer

    with endpoint_for(settings) as base_url:
        player: Any
        if settings.player is PlayerKind.VOICEMODE:
            player = VoicemodePlayer(settings, base_url=base_url, sink_factory=sink_factory(record=record))
        else:
            endpoints = EndpointMemory.default()  # WORKBENCH_SPLIT=auto and --format auto learn per endpoint
            if settings.uses_local_server:
                endpoints.in_this_process_only(base_url)
            player = StreamPlayer(settings, base_url=base_url, sink_factory=sink_factory(record=record),
                                  endpoints=endpoints,
                                  cache=ReplyCache(max_mb=settings.cache_mb) if settings.cache else None)
        await player.warm_up()  # what a first request would otherwise load on the clock
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
    from ..engine.output.sinks import SinkError
    from ..engine.player import PlayError

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
