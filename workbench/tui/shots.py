"""The README's pictures, taken from real plays.

Each picture is the workbench as it was during or after real plays on the embedded server (made to
behave like a given kind of TTS by its knobs) through the virtual sink at real time, so every figure in
it was measured, and they agree with each other. The snapshot tests use the fixed scenes in scenes.py
instead, which are the same on every machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_TEXT
from ..engine.settings import Settings
from ..server.app import Knobs
from ..server.runner import EmbeddedServer
from .app import AppConfig, WorkbenchApp, create_app

Take = Callable[[WorkbenchApp, Any], Awaitable[None]]
NEAR_REAL_TIME = Knobs(pace=0.9, lateness_ms=60.0)  # a local neural TTS on a laptop: just ahead of playback
STALLING = Knobs(pace=0.5, lateness_ms=40.0, pause_at_s=2.5, pause_ms=1500.0)  # one long stall mid-reply
TIMEOUT_S = 90.0


async def _until(pilot: Any, condition: Callable[[], bool], what: str) -> None:
    waited = 0.0
    while not condition():
        if waited > TIMEOUT_S:
            raise TimeoutError(f"gave up waiting for {what}")
        await pilot.pause(0.1)
        waited += 0.1


def _finished(app: WorkbenchApp, n: int) -> bool:
    runs = app.session.runs
    return len(runs) >= n and all(r.metrics is not None for r in runs[:n])


async def _play(app: WorkbenchApp, pilot: Any, n: int) -> None:
    await pilot.press("p")
    await _until(pilot, lambda: _finished(app, n), f"play {n} to end")


async def mid_play(app: WorkbenchApp, pilot: Any) -> None:
    await _play(app, pilot, 1)
    await pilot.press("p")

    def half_way() -> bool:
        last = app.session.runs[-1].trace.last if len(app.session.runs) == 2 else None
        return last is not None and last.played_ms >= 4000.0

    await _until(pilot, half_way, "the second play to be half-way")


async def played(app: WorkbenchApp, pilot: Any) -> None:
    await _play(app, pilot, 1)
    await pilot.pause(0.3)


async def compare(app: WorkbenchApp, pilot: Any) -> None:
    from .screens.compare import CompareScreen

    screen = CompareScreen(app.session, app.config.text, "format:pcm", "format:mp3")
    await app.push_screen(screen)
    await pilot.pause()
    screen.action_run()
    await _until(pilot, lambda: _finished(app, 2), "A and B")
    await pilot.pause(0.3)


async def export(app: WorkbenchApp, pilot: Any) -> None:
    await _play(app, pilot, 1)
    await pilot.press("e")
    await pilot.pause(0.3)


@dataclass(frozen=True)
class Shot:
    name: str
    description: str
    take: Take
    knobs: Knobs = field(default_factory=Knobs)
    settings: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] = (120, 36)


SHOTS = (
    Shot("mid-play", "A second play half-way, on a TTS just ahead of real time: the buffer graph, live "
         "figures, the first run in the history, the settings.", mid_play, NEAR_REAL_TIME, size=(120, 46)),
    Shot("small", "The same at 80x24: the key figures, the graph and the message line; g, m, h and t show the "
         "rest.", mid_play, NEAR_REAL_TIME, size=(80, 24)),
    Shot("underrun", "Fixed playout at 100 ms against a TTS that stalls for 1.5 s: the underrun on the graph and "
         "in red, and the buffer that would have played it clean.", played, STALLING,
         {"playout": "fixed", "buffer_ms": 100}),
    Shot("compare", "A vs B, pcm against mp3, played one after the other: two graphs on the same scales and "
         "the table, with what each side used.", compare, Knobs(), size=(120, 40)),
    Shot("export", "The export dialog after a play: the preset voicemode reads as it is, and what voicemode "
         "does with each key.", export),
    Shot("error", "A play whose endpoint is not there: the state, the reason on the message line and in a "
         "notification; the app goes on.", played, Knobs(), {"base_urls": ("http://127.0.0.1:9/v1",)}),
)


async def take_shots(folder: Path, names: list[str] | None = None,
                     progress: Callable[[str], None] = lambda _: None) -> list[Path]:
    """Take the README's pictures (all, or those named) into `folder`; a minute or two in all."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for shot in SHOTS:
        if names and shot.name not in names:
            continue
        progress(f"{shot.name}: {shot.description}")
        with EmbeddedServer(knobs=shot.knobs) as server:
            config = AppConfig(settings=Settings(sink="virtual", **shot.settings), local_url=server.base_url,
                               start_server=False, save_dir=Path("presets-out"),
                               voicemode_env=Path("presets-out") / "voicemode.env", text=DEFAULT_TEXT)
            app = create_app(config)
            async with app.run_test(size=shot.size, notifications=True) as pilot:
                await pilot.pause()
                await shot.take(app, pilot)
                path = folder / f"{shot.name}.svg"
                app.save_screenshot(path.name, str(folder))
                out.append(path)
    return out
