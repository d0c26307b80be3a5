"""Pause and resume as a public part of the player (issue 27: the voicemode bridge holds playout with
them, and the workbench has a key for them): the playout holds the sample where it was, with a short
fade each way, the download goes on, and paused time is not underrun time."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workbench.engine.figures.metrics import PlayState
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import expected_tone, make_settings, tone_onset, virtual_factory
from .test_player import TEXT, tone_samples


@pytest.mark.parametrize("playout", ["fixed", "elastic"])
async def test_pause_holds_the_playout_and_resume_goes_on_from_the_same_sample(server: EmbeddedServer,
                                                                               playout: str) -> None:
    factory = virtual_factory(speed=1.0)
    player = StreamPlayer(make_settings(voices=("test-signal",), playout=playout), base_url=server.base_url,
                          sink_factory=factory)
    task = asyncio.create_task(player.play(TEXT))
    while player.buffer is None or player.buffer.played_samples < 12_000:  # half a second in
        await asyncio.sleep(0.01)
    player.pause()
    assert player.state() is PlayState.PAUSED
    await asyncio.sleep(0.2)
    held_at = player.buffer.played_samples
    await asyncio.sleep(0.4)
    assert player.buffer.played_samples == held_at  # nothing read while paused
    player.resume()
    m = await asyncio.wait_for(task, 15)
    await player.aclose()
    assert m.state == "done" and m.underruns == 0 and m.underrun_ms == 0
    assert m.paused_ms == pytest.approx(600, abs=60)
    recorded = factory.made[-1].recorder.samples()
    heard = recorded[tone_onset(recorded) :]
    windows = heard[: len(heard) // 48 * 48].reshape(-1, 48)  # 2 ms
    loud = np.sqrt(np.mean(windows**2, axis=1)) > 0.01
    first, last = np.flatnonzero(loud)[[0, -1]]
    quiet = np.flatnonzero(~loud[first : last + 1]) + first
    # one silence inside the tone: the pause, about 600 ms of it
    assert len(quiet) * 2 == pytest.approx(600, abs=60) and quiet[-1] - quiet[0] == len(quiet) - 1
    if playout == "fixed":  # fixed playout plays the samples as they came: the tone goes on where it stopped
        n = tone_samples()
        tone = expected_tone(n)
        # the exact edges: the fade-out's last sample and the fade-in's first play at gain 0
        start, end = quiet[0] * 48, (quiet[-1] + 1) * 48
        nonzero = np.flatnonzero(heard[start - 480 : end + 480]) + start - 480
        gap = np.flatnonzero(np.diff(nonzero) > 1000)[0]
        before, after = heard[: nonzero[gap] + 2], heard[nonzero[gap + 1] - 1 :]
        played = np.concatenate([before, after])[: n - 200]
        # every sample once, in order, but for the 5 ms fades each side of the pause
        fades = np.zeros(len(played), dtype=bool)
        fades[max(0, len(before) - 130) : len(before) + 130] = True
        assert np.allclose(played[~fades], tone[: len(played)][~fades], atol=1e-4)


async def test_a_player_paused_before_its_play_starts_holds_from_the_first_sample(server: EmbeddedServer) -> None:
    factory = virtual_factory(speed=1.0)
    player = StreamPlayer(make_settings(voices=("test-signal",)), base_url=server.base_url, sink_factory=factory)
    player.pause()
    task = asyncio.create_task(player.play(TEXT))
    await asyncio.sleep(0.5)
    assert player.buffer is not None and player.buffer.played_samples == 0
    player.resume()
    m = await asyncio.wait_for(task, 15)
    await player.aclose()
    assert m.state == "done" and m.paused_ms > 300 and m.underrun_ms == 0
