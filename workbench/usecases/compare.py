"""A vs B: the metrics of two plays side by side, the difference, and which is better.

The results a listener meets come first (first sound, TTFA, underruns, underrun time, stretched), then the
other figures; what each side was set up with follows them. A side is "better" only where the difference is
larger than two runs of the same play differ by (`spread`): one play each cannot tell 2 ms apart.

No Textual here: the compare screen and the saved JSON/Markdown reports share these rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.figures.metrics import FIGURE, PlayMetrics
from ..engine.settings import Settings

# the figures compared, labelled and judged as the figures table says: the results first
RESULTS = ("first_sound_ms", "ttfa_ms", "underruns", "underrun_ms", "stretched_pct")
COMPARED = (*RESULTS, "leading_silence_ms", "request_sent_ms", "ttfb_ms", "first_byte_ms",
            "device_underflows", "avg_buffer_ms", "min_buffer_ms", "throughput_kbps",
            "arrival_rtf", "decode_ms_p95", "bytes", "first_audio_bytes", "played_ms", "reconnects", "decoder_errors",
            "stretch_in_pauses_pct", "speech_off_tempo_pct")
METRICS: tuple[tuple[str, str, str, str | None], ...] = tuple(
    (FIGURE[f].field, FIGURE[f].label, FIGURE[f].unit, FIGURE[f].better) for f in COMPARED)


@dataclass(frozen=True)
class Row:
    field: str
    label: str
    a: float | None
    b: float | None
    unit: str
    better: str | None  # "A", "B", "≈" (within the spread) or None (no better, or a value missing)

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    def cells(self) -> tuple[str, str, str, str, str]:
        return (self.label, fmt(self.a, self.unit), fmt(self.b, self.unit), fmt(self.diff, self.unit, signed=True),
                self.better or "")


def fmt(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if unit in ("", "B"):
        text = f"{value:{sign},.0f}"
    elif unit == "x" or abs(value) < 10:
        text = f"{value:{sign}.2f}"
    else:
        text = f"{value:{sign},.0f}"
    return f"{text} {unit}".rstrip()


def compare_rows(a: PlayMetrics, b: PlayMetrics) -> list[Row]:
    rows = []
    for field, label, unit, direction in METRICS:
        va, vb = (None if _not_measured(m, field) else getattr(m, field) for m in (a, b))
        va = None if va is None else float(va)
        vb = None if vb is None else float(vb)
        better = None
        if direction and va is not None and vb is not None:
            if abs(va - vb) <= spread(unit, va, vb):
                better = "≈"
            elif (va < vb) == (direction == "lower"):
                better = "A"
            else:
                better = "B"
        rows.append(Row(field, label, va, vb, unit, better))
    return rows


SPREAD_NOTE = ("≈: within what two runs of the same play differ by (10 ms or 10 % for times, 10 % for rates and "
               "sizes, 2 points for shares)")


def spread(unit: str, a: float, b: float) -> float:
    """How far apart two runs of the same play may come out: a difference within it names no better side."""
    larger = max(abs(a), abs(b))
    if unit == "":
        return 0.0  # counts: 0 against 1 underrun is a difference
    if unit == "ms":
        return max(10.0, 0.1 * larger)
    if unit == "%":
        return 2.0
    return 0.1 * larger


def setup_rows(a: Settings, b: Settings) -> list[tuple[str, str, str]]:
    """What each side played with, as rows (label, A, B)."""
    def player(s: Settings) -> str:
        return "voicemode 9.0" if s.player == "voicemode" else "this engine"

    def fmt(s: Settings) -> str:
        return "auto" if s.auto_format else s.audio_format

    return [("format", fmt(a), fmt(b)),
            ("initial buffer", f"{a.buffer_ms} ms", f"{b.buffer_ms} ms"),
            ("chunk size", f"{a.chunk_size} B", f"{b.chunk_size} B"),
            ("max buffer", f"{a.max_buffer_s:g} s", f"{b.max_buffer_s:g} s"),
            ("player", player(a), player(b)),
            ("playout", a.playout, b.playout),
            ("network", a.network, b.network)]


def _not_measured(m: PlayMetrics, field: str) -> bool:
    """A virtual sink has no sound card: no device underflows to count (the counters say n/a; so does compare)."""
    return field == "device_underflows" and m.sink.startswith("virtual")


def report(a_name: str, b_name: str, a: PlayMetrics, b: PlayMetrics, text: str,
           settings: dict[str, Any] | None = None,
           setup: list[tuple[str, str, str]] | None = None) -> tuple[dict[str, Any], str]:
    """The comparison as a JSON-able dict and as Markdown: the results, then what each side was set up with."""
    rows = compare_rows(a, b)
    data = {"a": {"name": a_name, "metrics": a.to_dict()}, "b": {"name": b_name, "metrics": b.to_dict()},
            "text": text, "settings": settings or {},
            "setup": [{"setting": label, "a": va, "b": vb} for label, va, vb in setup or []],
            "rows": [{"metric": r.field, "a": r.a, "b": r.b, "diff": r.diff, "better": r.better} for r in rows]}
    lines = [f"# A vs B: {a_name} vs {b_name}", "", f"Text: {text!r}", "",
             "| metric | A | B | B - A | better |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    lines += ["", SPREAD_NOTE]
    if setup:
        lines += ["", "| setup | A | B |", "|---|---|---|"]
        lines += [f"| {label} | {va} | {vb} |" for label, va, vb in setup]
    for side, m in (("A", a), ("B", b)):
        if m.auto_format:
            lines += ["", f"{side}: --format auto chose {m.format}: {m.auto_format}"]
        if m.error:
            lines += ["", f"{side} failed: {m.error}"]
    return data, "\n".join(lines) + "\n"


def save_report(folder: Path, stem: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{stem}-{n}.json").exists() or (folder / f"{stem}-{n}.md").exists():
        n += 1
    json_path, md_path = folder / f"{stem}-{n}.json", folder / f"{stem}-{n}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path
