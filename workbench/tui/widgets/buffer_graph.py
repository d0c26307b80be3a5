"""The buffer level over time: level, target, initial-buffer line and underruns."""

from __future__ import annotations

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

    def render(self):  # type: ignore[no-untyped-def]
        self._draw()
        return super().render()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.xlabel("seconds since the request")
        trace = self.trace
        width = max(self.size.width - 12, 10)
        if trace is None or len(trace) == 0:
            plt.xlim(0, self.x_max_s or 10)
            plt.ylim(0, self.y_max_ms or 500)
            plt.plot([0.0], [0.0], marker=" ")
            return
        t, level, target, rate = trace.downsampled_with_rate(width)
        xs = [v / 1000.0 for v in t]
        top = self.y_max_ms or trace.peak_ms * 1.15
        plt.ylim(0, max(top, 50.0))
        plt.xlim(0, self.x_max_s or max(xs[-1], 1.0))
        plt.ylabel("ms")
        plt.hline(trace.initial_buffer_ms, INITIAL)
        for at in trace.underrun_at_ms:
            plt.vline(at / 1000.0, UNDERRUN)
        if trace.ttfa_ms is not None:
            plt.vline(trace.ttfa_ms / 1000.0, FIRST_SOUND)
        plt.plot(xs, target, color=TARGET, marker="dot")
        plt.plot(xs, level, color=LEVEL, marker="hd")
        if trace.stretched:  # elastic playout: its rate on the right-hand axis
            plt.plot(xs, rate, color=RATE, marker="braille", yside="right")
            # textual-plotext's stubs give these the wrong parameter types; plotext takes yside here
            plt.ylim(0.4, 1.1, yside="right")  # type: ignore[arg-type]
            plt.ylabel("rate", yside="right")  # type: ignore[call-arg]
