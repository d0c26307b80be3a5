"""The buffer level over time: level, target, initial-buffer line and underruns.

The level axis is compressed (log(1 + ms/25)): the 20-300 ms that latency tuning is about takes half the
height, while a buffer that fills to its 2-3 s maximum on a fast server still fits. On a linear axis
that range lay on the bottom row.
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from ..state import Trace

# colours as RGB, so every terminal theme draws them the same (the legend is the border's subtitle)
LEVEL = (0, 200, 255)
TARGET = (255, 200, 0)
INITIAL = (128, 128, 128)
UNDERRUN = (240, 60, 60)
FIRST_SOUND = (80, 210, 80)
RATE = (200, 120, 255)
LEGEND = ("[rgb(0,200,255)]━ buffer[/] [rgb(255,200,0)]┅ target[/] [rgb(128,128,128)]─ initial[/] "
          "[rgb(80,210,80)]│ first sound[/] [rgb(240,60,60)]│ underrun[/] [rgb(200,120,255)]⠒ rate[/]")


SCALE_MS = 25.0  # below this the axis is nearly linear; above, logarithmic
TICKS_MS = (0, 25, 50, 100, 150, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000)


def squash(ms: float) -> float:
    """A level in ms as drawn on the compressed axis."""
    return math.log1p(max(ms, 0.0) / SCALE_MS)


def ticks(top_ms: float, rows: int) -> list[float]:
    """Round levels to label, at least two rows apart, none above `top_ms`; the top itself too (rounded to two
    figures) where there is room, so the line is never drawn against an unlabelled top row."""
    gap = squash(top_ms) * 2.0 / max(rows, 2)
    out: list[float] = []
    for tick in TICKS_MS:
        if tick > top_ms:
            break
        if not out or squash(tick) - squash(out[-1]) >= gap:
            out.append(float(tick))
    digits = 10 ** max(int(math.log10(max(top_ms, 1.0))) - 1, 0)
    top = float(int(top_ms // digits) * digits)  # two figures, rounded down: on the axis, never above it
    if out and top > out[-1] and squash(top) - squash(out[-1]) >= gap:
        out.append(top)
    return out


class BufferGraph(PlotextPlot):
    """Draws one trace. Data is pushed in with `show()`; drawing happens only on `refresh()`.

    plotext rebuilds the whole chart on each render, so the trace is downsampled to the widget's width
    and callers redraw at about 10 Hz at most.
    """

    DEFAULT_CSS = """
    BufferGraph { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str = "buffer level", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.trace: Trace | None = None
        self.x_max_s: float | None = None
        self.y_max_ms: float | None = None
        self.border_subtitle = LEGEND

    def show(self, trace: Trace | None, *, x_max_s: float | None = None, y_max_ms: float | None = None) -> None:
        """Draw `trace` (None: empty). `x_max_s`/`y_max_ms` fix the scales, to compare graphs."""
        self.trace = trace
        self.x_max_s = x_max_s
        self.y_max_ms = y_max_ms
        self.refresh()

    def _y_axis(self, top_ms: float, rows: int) -> None:
        plt = self.plt
        plt.ylim(0, squash(top_ms) * (1.0 + 1.0 / rows))  # a row above the top: plotext drops a label on the edge
        marks = ticks(top_ms, rows)
        plt.yticks([squash(v) for v in marks], [f"{v:.0f}" for v in marks])
        plt.ylabel("ms, log")

    def render(self):  # type: ignore[no-untyped-def]
        self._draw()
        return super().render()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.xlabel("seconds since the request")
        trace = self.trace
        width = max(self.size.width - 12, 10)
        rows = max(self.size.height - 6, 2)
        if trace is None or len(trace) == 0:
            plt.xlim(0, self.x_max_s or 10)
            self._y_axis(self.y_max_ms or 500.0, rows)
            plt.plot([0.0], [0.0], marker=" ")
            return
        t, level, target, rate = trace.downsampled_with_rate(width)
        xs = [v / 1000.0 for v in t]
        top = max(self.y_max_ms or trace.peak_ms * 1.15, 100.0)
        self._y_axis(top, rows)
        plt.xlim(0, self.x_max_s or max(xs[-1], 1.0))
        plt.hline(squash(trace.initial_buffer_ms), INITIAL)
        for at in trace.underrun_at_ms:
            plt.vline(at / 1000.0, UNDERRUN)
        if trace.ttfa_ms is not None:
            plt.vline(trace.ttfa_ms / 1000.0, FIRST_SOUND)
        plt.plot(xs, [squash(v) for v in target], color=TARGET, marker="dot")
        plt.plot(xs, [squash(v) for v in level], color=LEVEL, marker="hd")
        if trace.stretched:  # elastic playout: its rate on the right-hand axis
            plt.plot(xs, rate, color=RATE, marker="braille", yside="right")
            # textual-plotext's stubs give these the wrong parameter types; plotext takes yside here
            plt.ylim(0.4, 1.1, yside="right")  # type: ignore[arg-type]
            plt.ylabel("rate", yside="right")  # type: ignore[call-arg]
