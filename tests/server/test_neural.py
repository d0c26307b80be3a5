"""The embedded server's neural voice (Piper, from the quality extra) and its slow moments, again and again."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from workbench.server import neural, speech
from workbench.server.app import Knobs, paced_audio

need_piper = pytest.mark.skipif(not neural.voices() and os.environ.get("WORKBENCH_REQUIRE_QUALITY") != "1",
                                reason="the quality extra is not installed (./test.sh installs it; CI requires it)")


@need_piper
def test_joe_is_offered_and_speaks_the_same_reply_the_same_at_the_servers_rate() -> None:
    assert "joe" in speech.voices()
    text = "Joe says this twice."
    first = np.concatenate(list(speech.synthesize(text, "joe")))
    again = np.concatenate(list(speech.synthesize(text, "joe")))
    assert np.array_equal(first, again)  # a resumed stream gets the bytes it lost, not a new rendition
    assert 0.8 < len(first) / speech.OUTPUT_RATE < 3.0 and np.abs(first).max() > 0.1


def test_a_voice_the_server_does_not_have_is_not_offered() -> None:
    assert neural._model_path("nobody") is None and "nobody" not in speech.voices()


async def _arrival_s(knobs: Knobs) -> float:
    t0 = time.perf_counter()
    async for _ in paced_audio("one two three four five six seven eight", "test-signal", "pcm", 1.0, knobs, t0):
        pass
    return time.perf_counter() - t0


def test_the_server_is_slow_again_every_pause_every_s() -> None:
    """Eight words of the test signal are 2.7 s of audio: a slow moment at 0.5 s and every 0.5 s after is
    five of them; once is one."""
    base = Knobs(ttfb_ms=0, pace=0.0, flush_ms=0, pause_at_s=0.5, pause_ms=150)
    once = asyncio.run(_arrival_s(base))
    often = asyncio.run(_arrival_s(Knobs(**{**vars(base), "pause_every_s": 0.5})))
    assert once >= 0.15 and often >= 0.75 and often > once + 0.5


def test_pause_every_s_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="pause_every_s"):
        Knobs().merged({"pause_every_s": "-1"})
