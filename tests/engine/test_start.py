"""One play's playout built whole on its sink, and a device started with its first audio."""

from __future__ import annotations

import pytest

from workbench.engine.output.sinks import VirtualSink
from workbench.engine.output.start import build_chain

from ..conftest import make_settings

RATE = 24_000


class DeviceLike(VirtualSink):
    """The virtual sink, as a device with 40 ms of latency would present itself at the start."""

    kind = "device"

    def __init__(self) -> None:
        super().__init__(RATE, 480)
        self.latency_s = 0.040


@pytest.mark.parametrize("buffer_ms", [0, 30])
def test_a_fixed_start_on_a_device_keeps_its_floor_whatever_target_comes_later(buffer_ms: int) -> None:
    """A device reads its whole buffer when it starts: the ring holds that and a block before it starts.
    A later target (the adaptive target every 100 ms, a live edit) must not take that away, or the start
    itself is an underrun."""
    chain = build_chain(make_settings(playout="fixed", buffer_ms=buffer_ms), DeviceLike(), float(buffer_ms),
                        trailing_silence_s=0.0)
    chain.start()
    floor_ms = 40.0 + 20.0  # the device's latency and a block
    assert chain.buffer.target_ms == pytest.approx(floor_ms, abs=0.1)
    chain.buffer.set_target_ms(float(buffer_ms))  # as the adaptive target would, 100 ms in
    assert chain.buffer.target_ms == pytest.approx(floor_ms, abs=0.1)
    chain.buffer.set_target_ms(500.0)  # above it: the target rules
    assert chain.buffer.target_ms == pytest.approx(500.0, abs=0.1)
    chain.sink.close()


def test_the_chain_is_elastic_only_when_streaming_and_asked() -> None:
    elastic = build_chain(make_settings(), VirtualSink(RATE, 480), 150.0, trailing_silence_s=0.0)
    assert elastic.elastic is not None and elastic.feed is elastic.elastic
    fixed = build_chain(make_settings(playout="fixed"), VirtualSink(RATE, 480), 150.0, trailing_silence_s=0.0)
    assert fixed.elastic is None and fixed.feed is fixed.buffer and fixed.buffer.target_ms == pytest.approx(150.0)
    whole = build_chain(make_settings(streaming_enabled=False, max_buffer_s=3.0), VirtualSink(RATE, 480), 150.0,
                        trailing_silence_s=0.0)
    assert whole.elastic is None and whole.buffer.target_ms == pytest.approx(3000.0)  # the whole reply first
