"""The play's counters, live while it runs and final when it ends, and the one-line strip of key figures
that stays on screen at every terminal size."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ...engine.figures.metrics import FIGURE, PlayMetrics, Snapshot

STATE_STYLE = {
    "idle": "dim", "connecting": "yellow", "buffering": "yellow", "playing": "green", "underrun": "bold red",
    "paused": "cyan", "draining": "green", "done": "bold green", "stopped": "yellow", "failed": "bold red",
    "tuning": "yellow",
}
PENDING = "…"


def _ms(v: float | None) -> str:
    return PENDING if v is None else f"{v:.0f} ms"


VIRTUAL_UNDERFLOWS = "n/a (virtual sink)"  # no sound card, so nothing for PortAudio to report


def idle_values(fmt: str, network: str, initial_ms: float | None = None) -> dict[str, str]:
    """Before a play: the initial buffer the next one starts from (`initial`, on the key line)."""
    values = {k: "-" for k in LABELS}
    values.update(state="idle", format=fmt, network=network)
    if initial_ms is not None:
        values["initial"] = f"{initial_ms:.0f} ms"
    return values


def live_values(snap: Snapshot, network: str) -> dict[str, str]:
    values = {k: PENDING for k in LABELS}
    values.update(
        state=snap.state.value, format=snap.format, network=network,
        ttfb=_ms(snap.ttfb_ms), ttfa=_ms(snap.ttfa_ms), sound=_ms(snap.first_sound_ms),
        underruns=f"{snap.underruns} ({snap.underrun_ms:.0f} ms)",
        underflows=VIRTUAL_UNDERFLOWS if snap.sink == "virtual" else str(snap.device_underflows),
        now=f"{snap.level_ms:.0f} ms",
        audio=f"{snap.played_ms / 1000:.1f} / {snap.received_ms / 1000:.1f} s",
        bytes=f"{snap.bytes / 1024:.0f} KiB",
        target=f"{snap.target_ms:.0f} ms",
        playout=f"elastic, rate {snap.rate:.2f}" if snap.playout == "elastic" else "fixed",
    )
    return values


def format_choice(m: PlayMetrics) -> str:
    """What --format auto chose for a play, and why (each fragment's format when they differ)."""
    out = f"--format auto chose {m.format}: {m.auto_format}"
    if len(set(m.fragment_formats)) > 1:
        out += f"; then, fragment by fragment: {', '.join(m.fragment_formats)}"
    return out


def final_values(m: PlayMetrics) -> dict[str, str]:
    fmt = m.format
    if m.detected_format and m.detected_format != m.format:
        fmt += f" → {m.detected_format}"  # the server sent something else; that is what played
    if not m.streaming:
        fmt += " (buffered)"
    elif m.fallback:
        fmt += " (fell back to buffered)"
    if m.pcm_rate is not None and m.pcm_from not in (None, "default"):
        fmt += f" {m.pcm_rate / 1000:g} kHz"  # the rate the response stated (or the setting forced)
    if m.cache == "hit":
        fmt += " (cache)"  # no request: from the reply cache
    if m.auto_format:
        later = [f for f in m.fragment_formats[1:] if f != m.format]
        fmt += f"→{later[0]}" if later else ""
        fmt += " (auto)"
    return {
        "state": m.state, "format": fmt, "network": m.network,
        "ttfb": _ms(m.ttfb_ms).replace(PENDING, "-"), "ttfa": _ms(m.ttfa_ms).replace(PENDING, "-"),
        "sound": "-" if m.first_sound_ms is None else f"{m.first_sound_ms:.0f} ms (+{m.leading_silence_ms or 0:.0f})",
        "underruns": f"{m.underruns} ({m.underrun_ms:.0f} ms)" + (f"; paused {m.paused_ms / 1000:.1f} s"
                                                                  if m.paused_ms else ""),
        "underflows": VIRTUAL_UNDERFLOWS if m.sink.startswith("virtual") else
        str(m.device_underflows) if m.sink else "-",
        "now": "-",
        "buffer": "-" if m.avg_buffer_ms is None else f"{m.avg_buffer_ms:.0f} / {m.min_buffer_ms or 0:.0f} ms",
        "throughput": "-" if m.throughput_kbps is None else f"{m.throughput_kbps:.0f} kbit/s",
        "pace": "-" if m.arrival_rtf is None else f"{m.arrival_rtf:.1f}x",
        "decode": "-" if m.decode_ms_p95 is None else f"{m.decode_ms_p95:.2f} ms",
        "reconnects": str(m.reconnects), "decoder_errors": str(m.decoder_errors),
        "audio": f"{m.played_ms / 1000:.1f} / {m.audio_ms / 1000:.1f} s",
        "bytes": f"{m.bytes / 1024:.0f} KiB",
        "first_audio": "-" if m.first_audio_bytes is None else f"{m.first_audio_bytes} B",
        "frames": f"{m.frames} {m.frame_kind}" if m.frame_kind else "-",
        "priming": f"{m.priming_ms:.1f} ms" if m.priming_ms else "-",
        "target": "-" if m.target_ms is None else f"{m.target_ms:.0f} ms",
        "needed": "-" if m.needed_buffer_ms is None else f"{m.needed_buffer_ms:.0f} ms",
        "playout": m.playout if m.playout == "fixed" else f"elastic, {m.stretched_pct:.0f}% stretched" + (
            f", {m.stretch_in_pauses_pct:.0f}% in pauses" if m.stretch_in_pauses_pct is not None else ""),
        "fragments": "1" if m.fragments == 1 else f"{m.fragments}, longest join {_ms(m.join_gap_ms)}",
    }


# the grid's keys, in order; most are a metric, labelled as the figures table says
_FIELDS = {"ttfb": "ttfb_ms", "ttfa": "ttfa_ms", "sound": "first_sound_ms", "underruns": "underruns",
           "underflows": "device_underflows",
           "buffer": "avg_buffer_ms", "throughput": "throughput_kbps", "pace": "arrival_rtf",
           "decode": "decode_ms_p95", "reconnects": "reconnects", "decoder_errors": "decoder_errors",
           "audio": "played_ms", "bytes": "bytes", "first_audio": "first_audio_bytes", "frames": "frames",
           "priming": "priming_ms", "needed": "needed_buffer_ms", "fragments": "fragments"}
LABELS = {"state": "state", "format": "format", "network": "network", "playout": "playout",
          **{key: FIGURE[field].short for key, field in _FIELDS.items()},
          "now": "buffer now", "target": FIGURE["target_ms"].short}  # the buffer now beside its target

COLUMN_WIDTH = 36  # a label and a value, with room between columns
MAX_COLUMNS = 4


def columns_for(width: int) -> int:
    return max(1, min(MAX_COLUMNS, width // COLUMN_WIDTH))


def rows_for(width: int) -> int:
    """Rows the grid needs at `width` (its content width)."""
    return -(-len(LABELS) // columns_for(width))


class _Figures(Widget):
    """Shows a dict of counter values (from `idle_values`, `live_values` or `final_values`)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: dict[str, str] = idle_values("pcm", "none")

    def show(self, values: dict[str, str]) -> None:
        self.values = values
        self.refresh()


class Counters(_Figures):
    """A grid of counters, in as many columns as the width allows. Its size changes only with the
    terminal's (the app sets its height), so a new value repaints this widget alone (no layout pass of
    the whole screen ten times a second)."""

    DEFAULT_CSS = """
    Counters { height: auto; padding: 0 1; }
    """

    def render(self) -> Text:
        return self._grid(self.content_size.width)

    def _grid(self, width: int) -> Text:
        """The counters in columns of label and value, built as plain text: ten times a second this is
        far cheaper than laying out a table. Each column is as wide as its longest label and value;
        the space left over goes between the columns."""
        keys = list(LABELS)
        count = columns_for(width)
        rows = rows_for(width)
        columns = [keys[c * rows : (c + 1) * rows] for c in range(count)]
        label_w = [max(len(LABELS[k]) for k in col) + 1 for col in columns]
        value_w = [max(12, *(len(self.values.get(k, "-")) for k in col)) for col in columns]  # steady columns
        spare = width - sum(label_w) - sum(value_w)
        gap = max(spare // (count - 1), 1) if spare > 0 and count > 1 else 1
        out = Text(no_wrap=True, overflow="ellipsis")
        for r in range(rows):
            if r:
                out.append("\n")
            for c, col in enumerate(columns):
                if r >= len(col):
                    continue
                key = col[r]
                value = self.values.get(key, "-")
                style = STATE_STYLE.get(value, "") if key == "state" else ""
                if key == "underruns":
                    style = _underrun_style(value)
                out.append(LABELS[key].ljust(label_w[c]), style="dim")
                out.append(value.ljust(value_w[c] + gap) if c < count - 1 else value, style=style)
        return out


def _underrun_style(value: str) -> str:
    return "" if value.startswith(("0", "-", PENDING)) else "bold red"


class KeyFigures(_Figures):
    """One line that is on screen at every size: the state, TTFA, underruns, the buffer now and its
    target, and device underflows (where a sound card can report them). What does not fit the width is
    left out, least important first."""

    DEFAULT_CSS = """
    KeyFigures { height: 1; padding: 0 1; }
    """

    def parts(self, short: bool = False) -> list[tuple[str, str, str]]:
        """(label, value, style) in display order; `short`: "target" for the adaptive target (narrow screens)."""
        v = self.values
        state = v.get("state", "-")
        if "tune" in v:  # a tune running: its step (which trial, play n of N)
            return [("", state, STATE_STYLE.get(state, "")), ("", v["tune"], "")]
        now, target = v.get("now", "-"), v.get("target", "-")
        word = "target" if short else "adaptive target"  # the initial buffer, as adaptive buffering moved it
        if now not in ("-", PENDING):
            buffer = ("buffer", f"{now}, {word} {target}")
        elif target != "-":  # a play that ended, or failed before any audio
            buffer = (word, target)
        elif "initial" in v:  # before a play: the initial buffer it will start from
            buffer = ("initial buffer", v["initial"])
        else:
            buffer = ("buffer", "-")
        out = [("", state, STATE_STYLE.get(state, "")), ("TTFA", v.get("ttfa", "-"), ""),
               ("underruns", v.get("underruns", "-"), _underrun_style(v.get("underruns", "-"))),
               (*buffer, "")]
        if v.get("underflows", "-") not in (VIRTUAL_UNDERFLOWS, "-"):
            out.append(("device underflows", v["underflows"], _underrun_style(v["underflows"])))
        return out

    def render(self) -> Text:
        width = self.content_size.width
        parts = self.parts()
        keep = list(range(len(parts)))
        sep = " │ "

        def length(idx: list[int]) -> int:
            return sum(len(parts[i][0]) + (1 if parts[i][0] else 0) + len(parts[i][1]) for i in idx) + \
                len(sep) * (len(idx) - 1)

        if length(keep) > width:  # the shorter word first, before anything goes
            parts = self.parts(short=True)

        for drop in (4, 3, 2):  # underflows, then the buffer, then underruns: state and TTFA always
            if length(keep) > width and drop in keep:
                keep.remove(drop)
        out = Text(no_wrap=True, overflow="ellipsis")
        for n, i in enumerate(keep):
            label, value, style = parts[i]
            if n:
                out.append(sep, style="dim")
            if label:
                out.append(label + " ", style="dim")
            out.append(value, style=style or "bold")
        return out
