"""Fixed scenes of the workbench, for snapshot tests and the README's screenshots.

Each scene builds the app through the same factory the CLI uses, then pushes made-up but plausible
data in (no server, no audio, no timers, no clocks), so the picture is the same on every machine.
Regenerate the pictures with `workbench screenshots`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.widgets import Static

from ..defaults import DEFAULT_TEXT
from ..engine.figures.metrics import PlayMetrics, PlayState, Snapshot
from ..engine.settings import Settings
from .app import AppConfig, WorkbenchApp, create_app
from .state import RunRecord
from .widgets.settings_panel import SettingsPanel

SIZE = (140, 44)
FAKE_URL = "http://127.0.0.1:8880/v1"  # shown, never contacted
LEADING_SILENCE_MS = 12.2  # the embedded server's speech (espeak-ng) starts with 292 quiet samples
ELASTIC_START_MS = 20.0  # one device block (that it could slow down): where elastic playout starts
NEAR_DRY_MS = 60.0  # below this, the model plays at half speed


def scene_app(save_dir: Path = Path("presets-out"), **settings: Any) -> WorkbenchApp:
    """The app for a scene; `save_dir` shows in dialogs (a relative path, so pictures never differ)."""
    config = AppConfig(settings=Settings(sink="virtual", **settings), local_url=FAKE_URL, start_server=False,
                       save_dir=save_dir, voicemode_env=save_dir / "voicemode.env", text=DEFAULT_TEXT)
    return create_app(config)


def synthetic_snapshots(*, fmt: str = "pcm", initial_ms: float = 150.0, duration_s: float = 9.0,
                        arrival_rtf: float = 5.0, ttfb_ms: float = 180.0, stalls: tuple[tuple[float, float], ...] = (),
                        until_s: float | None = None, max_buffer_ms: float = 2000.0, step_ms: float = 100.0,
                        playout: str = "fixed") -> list[Snapshot]:
    """A play as a simple model: audio arrives `arrival_rtf` times faster than real time (except
    during `stalls`, (start s, length s) pairs). Fixed playout starts at `initial_ms`, drains at 1x,
    and rebuffers to the target after running dry; elastic playout starts with the first 20 ms and
    plays slower (0.5x when nearly dry, 0.92x below the target) until the buffer has grown."""
    snaps: list[Snapshot] = []
    t = 0.0
    received = played = level = 0.0
    state = PlayState.CONNECTING
    underruns = 0
    underrun_ms = 0.0
    ttfa = None
    elastic = playout == "elastic"
    total_ms = duration_s * 1000.0
    end_ms = (until_s * 1000.0) if until_s is not None else math.inf
    while t <= end_ms:
        arriving = t >= ttfb_ms and received < total_ms and not any(a * 1000 <= t < (a + d) * 1000 for a, d in stalls)
        if arriving:
            room = max_buffer_ms - level
            got = min(step_ms * arrival_rtf, total_ms - received, room)
            received += got
            level += got
        rate = 1.0
        start_ms = ELASTIC_START_MS if elastic else initial_ms
        if state in (PlayState.CONNECTING, PlayState.BUFFERING, PlayState.UNDERRUN):
            if received > 0 and state is PlayState.CONNECTING:
                state = PlayState.BUFFERING
            if level >= start_ms or (received >= total_ms and level > 0):
                state = PlayState.PLAYING
                ttfa = ttfa if ttfa is not None else t + 25.0
            elif state is PlayState.UNDERRUN:
                underrun_ms += step_ms
        elif state is PlayState.PLAYING:
            if elastic and received < total_ms and level < initial_ms:
                rate = 0.5 if level < NEAR_DRY_MS else 0.92
            out = min(step_ms * rate, level)
            level -= out
            played += out
            if level <= 0 and received < total_ms:
                state = PlayState.UNDERRUN
                underruns += 1
            elif level <= 0:
                state = PlayState.DONE
        shown = PlayState.DRAINING if state is PlayState.PLAYING and received >= total_ms else state
        snaps.append(Snapshot(t_ms=t, state=shown, level_ms=level, target_ms=initial_ms,
                              initial_buffer_ms=initial_ms, max_buffer_ms=max_buffer_ms, received_ms=received,
                              played_ms=played, bytes=int(received * 48), underruns=underruns,
                              underrun_ms=underrun_ms, device_underflows=0, ttfa_ms=ttfa, format=fmt,
                              rate=rate, playout=playout,
                              first_sound_ms=ttfa + LEADING_SILENCE_MS if ttfa is not None else None,
                              ttfb_ms=ttfb_ms if t >= ttfb_ms else None, sink="virtual"))
        if state is PlayState.DONE:
            break
        t += step_ms
    return snaps


def metrics_from(snaps: list[Snapshot], *, network: str = "none", ttfb_ms: float = 180.0,
                 fmt: str = "pcm", bytes_per_ms: float = 48.0, needed_ms: float = 60.0,
                 arrival_rtf: float = 5.0) -> PlayMetrics:
    """The final metrics of a synthetic play; `arrival_rtf` must be the one the snapshots were made with."""
    last = snaps[-1]
    levels = [s.level_ms for s in snaps if s.state is not PlayState.CONNECTING]
    return PlayMetrics(
        format=fmt, network=network, sink="virtual sink", ttfb_ms=ttfb_ms, first_byte_ms=ttfb_ms + 12,
        buffer_ready_ms=(last.ttfa_ms or 0) - 25, ttfa_ms=last.ttfa_ms, first_sound_ms=last.first_sound_ms,
        leading_silence_ms=LEADING_SILENCE_MS if last.ttfa_ms is not None else None, request_sent_ms=3.0,
        underruns=last.underruns,
        underrun_ms=last.underrun_ms, avg_buffer_ms=sum(levels) / len(levels), min_buffer_ms=min(levels),
        max_buffer_ms=max(levels), throughput_kbps=bytes_per_ms * 8 * arrival_rtf, arrival_rtf=arrival_rtf,
        decode_ms_p95=0.08,
        audio_ms=last.received_ms, played_ms=last.played_ms, bytes=int(last.received_ms * bytes_per_ms),
        chunks=120, initial_buffer_ms=last.initial_buffer_ms, total_ms=last.t_ms + 500, device_latency_ms=20,
        state=PlayState.DONE.value, detected_format=fmt,
        first_audio_bytes=int(bytes_per_ms * 20) if fmt == "pcm" else int(bytes_per_ms * 200),
        frames=0 if fmt in ("pcm", "wav") else int(last.received_ms / 24),
        frame_kind="" if fmt in ("pcm", "wav") else "frames",
        priming_ms=46.0 if fmt == "mp3" else 0.0, priming="tag" if fmt == "mp3" else "",
        target_ms=last.target_ms, needed_buffer_ms=needed_ms,
        **_stretch_figures(snaps, step_ms=snaps[1].t_ms - snaps[0].t_ms if len(snaps) > 1 else 100.0),
    )


def _stretch_figures(snaps: list[Snapshot], step_ms: float) -> dict[str, Any]:
    """Elastic playout's figures from a synthetic play (each snapshot stands for one step)."""
    if not snaps or snaps[-1].playout != "elastic":
        return {}
    rates = [s.rate for s in snaps if s.state in (PlayState.PLAYING, PlayState.DRAINING)]
    slow = [r for r in rates if r != 1.0]
    added = sum(step_ms * (1.0 - r) for r in slow)
    audio = sum(step_ms * r for r in rates) or 1.0
    return dict(playout="elastic", stretch_added_ms=added, stretched_pct=100.0 * sum(step_ms * r for r in slow) / audio,
                min_rate=min(rates, default=1.0), max_rate=max(rates, default=1.0))


def push_run(app: WorkbenchApp, snaps: list[Snapshot], *, finished: PlayMetrics | None = None,
             settings: Settings | None = None, label: str = "", text: str = DEFAULT_TEXT) -> RunRecord:
    """Show a run as if it had played: pushed into the session, whose events reach the app as a play's do
    (the scene's caller lets the app handle them before it takes the picture)."""
    session = app.session
    record = RunRecord(number=0, text=text, settings=settings or session.current_settings(), label=label)
    session.add_run(record)
    for snap in snaps:
        session.progress(record.number, snap)
    if finished is not None:
        session.finish(record.number, finished)
    return record


# -- the scenes -----------------------------------------------------------------------------------------
async def idle(app: WorkbenchApp) -> None:
    """Nothing played yet."""


async def mid_play(app: WorkbenchApp) -> None:
    earlier = synthetic_snapshots(duration_s=6.0, playout="elastic")
    push_run(app, earlier, finished=metrics_from(earlier))
    push_run(app, synthetic_snapshots(duration_s=9.0, arrival_rtf=1.15, until_s=4.2, playout="elastic"))


async def underrun(app: WorkbenchApp) -> None:
    session = app.session
    session.edit("buffer_ms", 100)  # the panel shows what the run played with
    session.base = session.base.replace(network="4g", playout="fixed")
    app.query_one(SettingsPanel).load(session.base, session.profiles[session.base.audio_format])
    snaps = synthetic_snapshots(duration_s=8.0, arrival_rtf=1.3, initial_ms=100, ttfb_ms=260,
                                stalls=((2.0, 1.4), (5.5, 1.2)))
    push_run(app, snaps, finished=metrics_from(snaps, network="4g", ttfb_ms=260, needed_ms=1380, arrival_rtf=1.3),
             settings=session.current_settings())


async def error(app: WorkbenchApp) -> None:
    session = app.session
    session.edit("endpoint", "http://127.0.0.1:9/v1")  # the endpoint label says what the run asked
    app.query_one(SettingsPanel).load(session.base, session.profiles[session.base.audio_format])
    app.query_one("#endpoint-label", Static).update(session.endpoint_label())
    m = PlayMetrics(format="pcm", state=PlayState.FAILED.value,
                    error="cannot reach http://127.0.0.1:9/v1: connection refused")
    push_run(app, [], finished=m, settings=session.current_settings())


async def export_dialog(app: WorkbenchApp) -> None:
    app.action_export()


async def compare(app: WorkbenchApp) -> None:
    from .screens.compare import CompareScreen

    screen = CompareScreen(app.session, DEFAULT_TEXT, "format:pcm", "format:mp3")
    await app.push_screen(screen)
    # MP3: its first frames come later (the encoder's lookahead) and arrive in bigger steps
    a_snaps = synthetic_snapshots(duration_s=8.0, arrival_rtf=4.0, playout="elastic")
    b_snaps = synthetic_snapshots(fmt="mp3", duration_s=8.0, arrival_rtf=2.5, ttfb_ms=290, playout="elastic")
    a = push_run(app, a_snaps, finished=metrics_from(a_snaps, arrival_rtf=4.0), label="A")
    b_settings = app.session.current_settings().replace(audio_format="mp3")
    b = push_run(app, b_snaps, finished=metrics_from(b_snaps, ttfb_ms=290, fmt="mp3", bytes_per_ms=4.0,
                                                        arrival_rtf=2.5),
                 settings=b_settings, label="B")
    screen.show_results({"A": "pcm", "B": "mp3"}, a, b)


async def format_change(app: WorkbenchApp) -> None:
    """The initial buffer set to 50 ms for pcm, then the format switched to mp3: what each says."""
    from textual.widgets import Input, Select

    panel = app.query_one(SettingsPanel)
    panel.query_one("#buffer_ms", Input).value = "50"
    app.edited(SettingsPanel.Edited("buffer_ms", 50))  # what Enter in the field sends, handled now
    panel.query_one("#audio_format", Select).value = "mp3"


async def loaded_preset(app: WorkbenchApp) -> None:
    """The shipped flaky preset loaded: what it changed."""
    from ..usecases.presets import load_preset

    app.session.apply_preset(load_preset(app.session.config.presets_dir / "flaky.env"))


@dataclass(frozen=True)
class Scene:
    name: str
    setup: Callable[[WorkbenchApp], Awaitable[None]]
    description: str


SCENES = (
    Scene("idle", idle, "The workbench as it opens: text, controls, empty graph, settings."),
    Scene("mid-play", mid_play, "A play in progress: the buffer graph filling, live counters, history."),
    Scene("underrun", underrun, "Fixed playout on the 4g profile with two stalls: underruns marked on the graph."),
    Scene("compare", compare, "A vs B: two graphs on the same scales and the metrics table."),
    Scene("export", export_dialog, "The export dialog: the preset voicemode reads as it is."),
    Scene("error", error, "A play that could not reach its endpoint: the error in the app, no crash."),
    Scene("format-change", format_change,
          "An initial buffer applied to pcm, then mp3 chosen: which values it plays with."),
    Scene("loaded-preset", loaded_preset, "The flaky preset loaded: what it changed, on the message line."),
)


async def save_screenshots(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for scene in SCENES:
        app = scene_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await scene.setup(app)
            await pilot.pause()
            path = folder / f"{scene.name}.svg"
            app.save_screenshot(str(path.name), str(folder))
            out.append(path)
    return out
