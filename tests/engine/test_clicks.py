"""No clicks where audio stops mid-waveform: a skipped corrupt frame, a stream cut short.

The test signal is a 440 Hz tone at -6 dBFS: one sample never differs from the next by more than about
0.058. A click is a jump far beyond that (a waveform cut at full amplitude jumps up to 0.5, or 1.0
between two halves of a wave). Each damaged play is compared with an undamaged play of the same format;
the tone's own abrupt end is left out (MP3's encoder renders it with a transient of its own).
"""

from __future__ import annotations

import numpy as np
import pytest

from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory
from .test_player import tone_samples

TEXT = "one two three four five six seven eight nine ten eleven twelve"  # about 4.1 s


async def play(server: EmbeddedServer, fmt: str, query: dict[str, str]):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=8.0)
    # fixed playout: the steps compared are the decoder's (stretching is tested for clicks on its own)
    player = StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, max_retries=0, playout="fixed"),
                          base_url=server.base_url, sink_factory=factory, extra_query=query)
    metrics = await player.play(TEXT)
    await player.aclose()
    return metrics, factory.made[-1].recorder.samples()


def largest_step(recorded: np.ndarray) -> float:
    """The largest sample-to-sample jump, leaving out 50 ms either side of where the tone itself ends."""
    onset = int(np.flatnonzero(np.abs(recorded) > 1e-4)[0])
    end = onset + tone_samples(TEXT)
    steps = np.abs(np.diff(recorded))
    steps[max(end - 1200, 0) : end + 1200] = 0.0
    return float(steps.max())


DAMAGE = {  # each of these clicked before the fades (largest step 0.35 to 0.73)
    # a corrupt FLAC frame fails its CRC and is skipped: the tone jumps in phase
    ("flac", "corrupt"): {"corrupt_at": "18000", "corrupt_len": "64"},
    # the body ends early, in the middle of the tone
    ("mp3", "truncated"): {"truncate_bytes": "7001"},
    ("flac", "truncated"): {"truncate_bytes": "42006"},
    ("opus", "truncated"): {"truncate_bytes": "7001"},
}


@pytest.mark.parametrize(("fmt", "damage"), list(DAMAGE))
async def test_damage_adds_no_click(server: EmbeddedServer, fmt: str, damage: str) -> None:
    _, clean = await play(server, fmt, {})
    m, damaged = await play(server, fmt, DAMAGE[fmt, damage])
    if damage == "corrupt":
        assert m.decoder_errors >= 1 and m.state == "done"
    else:
        assert m.played_ms < tone_samples(TEXT) / 24 - 500  # it really was cut mid-tone
    assert largest_step(damaged) <= largest_step(clean) + 0.03, "a click where the audio stops or jumps"


@pytest.mark.parametrize(("fmt", "offset"), [("mp3", "5000"), ("opus", "9000")])
async def test_a_lost_mp3_frame_or_opus_page_stays_smooth(server: EmbeddedServer, fmt: str, offset: str) -> None:
    """These two codecs hide a lost frame or page by themselves (MP3's overlapping frames, FFmpeg's
    Opus concealment), before any fade of ours; this keeps it so."""
    _, clean = await play(server, fmt, {})
    m, damaged = await play(server, fmt, {"corrupt_at": offset, "corrupt_len": "64"})
    assert m.decoder_errors >= 1
    assert largest_step(damaged) <= largest_step(clean) + 0.03
