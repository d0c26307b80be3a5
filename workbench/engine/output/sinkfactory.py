"""Making sinks: the device (its callback in C where the module was built, else in Python), the virtual
sink, or a WAV file; and `sink_factory`, how every player gets one for each play."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings
from . import nativesink
from .sinks import Recorder, Sink, SoundDeviceSink, VirtualSink, default_output_device

PYTHON_CALLBACK_NOTICE = ("the audio callback runs in Python (the C playout module was not built): a busy "
                          "machine can make the device underflow; reinstall with a C compiler to fix that")


def device_sink(rate: int, block_size: int, recorder: Recorder | None = None, *,
                device: str | int | None = None, channels: int = 1) -> tuple[Sink, str | None]:
    """The sound card: the C callback when it is built, else the Python one (with a notice saying so)."""
    if nativesink.available():
        return nativesink.NativeDeviceSink(rate, block_size, recorder, device=device, channels=channels), None
    return SoundDeviceSink(rate, block_size, recorder, device=device, channels=channels), PYTHON_CALLBACK_NOTICE


@dataclass(frozen=True)
class SinkSpec:
    """What a sink is made from: the settings a sink uses, and no more."""

    kind: str = "auto"  # WORKBENCH_SINK: auto, device, virtual, wav:PATH (device-python: the Python callback)
    rate: int = 24_000
    block_size: int = 480
    device: str | int | None = None
    channels: int = 1  # WORKBENCH_CHANNELS (2 also when WORKBENCH_PAN places the voice)

    @classmethod
    def of(cls, settings: Settings, rate: int | None = None, channels: int | None = None) -> SinkSpec:
        """The sink the settings ask for (at `rate`, when the player decodes to another rate; in `channels`,
        when the player plays only so many)."""
        return cls(settings.sink, rate or settings.output_rate, settings.block_size, settings.output_device,
                   channels or settings.layout.channels)


SinkFactory = Callable[[SinkSpec], tuple[Sink, "str | None"]]


def sink_factory(kind: str | None = None, *, speed: float = 1.0, record: str | Path | bool | None = None,
                 made: list[Sink] | None = None) -> SinkFactory:
    """How a player gets a sink for each play: the one factory the CLI, benchmarks, tuning and tests use.

    `kind` overrides the settings' WORKBENCH_SINK (auto, device, virtual, wav:PATH). A virtual sink can
    run `speed` times faster than real time. `record` keeps what was played: a WAV file's path, or True
    for a fresh in-memory `Recorder` on every sink. Each sink made is appended to `made`, if given.
    """
    def factory(spec: SinkSpec) -> tuple[Sink, str | None]:
        name = kind or spec.kind
        notice = None
        if name == "virtual" or speed != 1.0:
            recorder = Recorder() if record is True else Recorder(record) if record else None
            sink: Sink = VirtualSink(spec.rate, spec.block_size, recorder, speed=speed, channels=spec.channels)
        else:
            path = record if isinstance(record, str | Path) else None
            sink, notice = make_sink(name, rate=spec.rate, block_size=spec.block_size, device=spec.device,
                                     record=path, channels=spec.channels)
            if record is True and sink.recorder is None:
                sink.recorder = Recorder()
        if made is not None:
            made.append(sink)
        return sink, notice

    return factory


def make_sink(spec: str, *, rate: int, block_size: int, device: str | int | None = None,
              record: str | Path | None = None, channels: int = 1) -> tuple[Sink, str | None]:
    """Build the sink named by `spec` (auto, device, virtual, wav:PATH, and device-python to measure the
    Python callback against the C one).

    Returns the sink and a notice for the user, if any (for example when `auto` found no device).
    """
    recorder = Recorder(record) if record else None
    if spec == "device-python":
        return SoundDeviceSink(rate, block_size, recorder, device=device, channels=channels), None
    if spec.startswith("wav:"):
        return VirtualSink(rate, block_size, Recorder(spec[4:]), channels=channels), None
    if spec == "virtual":
        return VirtualSink(rate, block_size, recorder, channels=channels), None
    if spec == "device" or device is not None or default_output_device() is not None:
        return device_sink(rate, block_size, recorder, device=device, channels=channels)
    return (
        VirtualSink(rate, block_size, recorder, channels=channels),
        "no audio output device found: playing on the virtual sink (silent); set WORKBENCH_SINK=device to insist",
    )
