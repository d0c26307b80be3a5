"""The voicemode bridge's parts, without voicemode (tests/bridge/test_with_voicemode.py has the real one):
the stream voicemode gets instead of sounddevice's, the client that decodes replies as they arrive, the
patch of voicemode's streaming module, and what the bridge publishes. Fakes of voicemode's own objects
are only in these unit tests."""

from __future__ import annotations

import logging
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workbench.bridge import patch, stream
from workbench.bridge.decode import DecodingClient, can_decode
from workbench.bridge.publish import Publisher, ReplyFigures, read_live, read_replies
from workbench.bridge.stream import BridgePlayout, EngineOutputStream
from workbench.engine.decoding.decoders import StreamDecoder
from workbench.engine.output.sinks import Recorder, VirtualSink
from workbench.server.encoders import make_encoder

from ..conftest import make_settings

RATE = 24_000


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)


def int16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


@dataclass
class Snap:
    """The four things the bridge reads of voicemode's control state snapshot."""

    is_stopped: bool = False
    is_paused: bool = False
    is_skip_forward: bool = False
    pending_transport: str | None = None


class RealStream:
    """Stands in for sounddevice's OutputStream when the engine cannot start."""

    made: list[RealStream] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.calls = args, kwargs, []
        RealStream.made.append(self)

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self.calls.append(name)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every BridgePlayout made in the test plays on a real-time virtual sink that records."""
    recorder = Recorder()
    original = BridgePlayout.__init__

    def on_virtual(self: BridgePlayout, settings: Any, in_rate: int, publisher: Any = None, sink: Any = None) -> None:
        original(self, settings, in_rate, publisher, VirtualSink(settings.output_rate, settings.block_size, recorder))

    monkeypatch.setattr(BridgePlayout, "__init__", on_virtual)
    return recorder


def engine_stream(tmp_path: Path, control: Any = None, **settings: object) -> EngineOutputStream:
    s = make_settings(**settings)
    return EngineOutputStream(samplerate=RATE, channels=1, dtype="int16",
                              real=types.SimpleNamespace(OutputStream=RealStream), control=control,
                              settings=lambda: s, publisher=Publisher(tmp_path))


# -- the stream ------------------------------------------------------------------------------------------
def test_what_voicemode_writes_plays_through_the_engine_whole_and_once(tmp_path: Path, recorded: Recorder) -> None:
    x = tone(0.6)
    out = engine_stream(tmp_path, playout="fixed")
    out.start()
    for block in np.array_split(int16(x), 7):  # voicemode's 4096-byte chunks, roughly
        out.write(block)
    out.stop()
    heard = recorded.samples()
    heard = heard[np.flatnonzero(heard)[0] - 1 :]
    np.testing.assert_allclose(heard[: len(x) - 200], int16(x)[: len(x) - 200] / 32768.0, atol=1e-6)
    assert out.engine is not None and out.engine.closed
    (reply,) = read_replies(tmp_path)
    assert reply.state == "done" and reply.played_ms == pytest.approx(600, abs=1) and reply.underruns == 0
    assert read_live(tmp_path) is None  # the live file is gone once the reply ended


def test_an_engine_that_cannot_start_plays_voicemodes_own_way_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Any:
        raise RuntimeError("no PortAudio here")

    RealStream.made.clear()
    stream._warned.clear()
    with caplog.at_level(logging.WARNING, logger="voicemode.workbench_bridge"):
        for _ in range(2):
            out = EngineOutputStream(samplerate=RATE, channels=1, dtype="int16",
                                     real=types.SimpleNamespace(OutputStream=RealStream), settings=broken)
            out.start()
            out.write(int16(tone(0.05)))
            out.stop()
            out.close()
    assert [s.kwargs for s in RealStream.made] == [{"samplerate": RATE, "channels": 1, "dtype": "int16"}] * 2
    assert RealStream.made[0].calls == ["start", "write", "stop", "close"]
    said = [r.getMessage() for r in caplog.records if "own way" in r.getMessage()]
    assert len(said) == 1 and "no PortAudio here" in said[0]


def test_voicemodes_pause_holds_the_playout_and_its_stop_cuts_it(tmp_path: Path, recorded: Recorder) -> None:
    snap = Snap()
    out = engine_stream(tmp_path, control=lambda: snap)
    out.start()
    out.write(int16(tone(1.5)))  # voicemode writes ahead of playback: 1.5 s in the buffer at once
    time.sleep(0.3)
    snap.is_paused = True
    time.sleep(0.4)
    assert out.engine is not None and out.engine.paused
    held = out.engine.buffer.played_samples
    time.sleep(0.2)
    assert out.engine.buffer.played_samples == held  # voicemode stopped writing: nothing plays on
    snap.is_paused = False
    time.sleep(0.2)
    snap.is_stopped = True  # a stop while the rest would still play out
    t = time.perf_counter()
    out.stop()
    assert time.perf_counter() - t < 0.3
    (reply,) = read_replies(tmp_path)
    assert reply.state == "stopped" and reply.paused_ms >= 300 and reply.played_ms < 1200 and reply.underruns == 0


def test_a_float_or_stereo_stream_is_taken_as_voicemode_opens_it(tmp_path: Path, recorded: Recorder) -> None:
    s = make_settings(playout="fixed")
    out = EngineOutputStream(samplerate=48_000, channels=2, dtype="float32", real=None, settings=lambda: s)
    out.start()
    stereo = np.stack([tone(0.2, 440)[::1], tone(0.2, 440)[::1]], axis=1)
    stereo = np.repeat(stereo, 2, axis=0)  # 48 kHz
    out.write(stereo)
    out.stop()
    assert out.engine is not None and out.engine.received == pytest.approx(0.2 * RATE, abs=64)  # resampled to 24 kHz


# -- decoding as it arrives ----------------------------------------------------------------------------------
class FakeSpeech:
    """`client.audio.speech.with_streaming_response.create(...)` with a reply in pieces."""

    def __init__(self, body: bytes, content_type: str, piece: int = 700) -> None:
        self.body, self.content_type, self.piece = body, content_type, piece
        self.audio = self.speech = self.with_streaming_response = self
        self.asked: dict[str, Any] = {}

    def create(self, **params: Any) -> Any:
        self.asked = params
        outer = self

        class Manager:
            async def __aenter__(self) -> Any:
                response = types.SimpleNamespace(http_response=types.SimpleNamespace(
                    headers={"Content-Type": outer.content_type}))

                async def iter_bytes(chunk_size: int | None = None) -> Any:
                    for i in range(0, len(outer.body), outer.piece):
                        yield outer.body[i : i + outer.piece]

                response.iter_bytes = iter_bytes
                return response

            async def __aexit__(self, *exc: Any) -> None:
                return None

        return Manager()


@pytest.mark.parametrize("fmt", ["pcm", "mp3", "opus", "wav"])
async def test_a_reply_in_any_format_comes_out_as_16_bit_pcm_as_it_arrives(fmt: str) -> None:
    assert can_decode(fmt) is None
    encoder = make_encoder(fmt, mp3_tag=True, pcm_rate=RATE)
    body = encoder.encode(tone(1.0)) + encoder.flush()
    fake = FakeSpeech(body, {"pcm": "audio/pcm", "mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav"}[fmt])
    client = DecodingClient(fake, fmt, out_rate=RATE)
    pieces = []
    async with client.audio.speech.with_streaming_response.create(model="tts-1", input="hi", response_format=fmt) as r:
        async for piece in r.iter_bytes(chunk_size=4096):
            pieces.append(piece)
    assert fake.asked["response_format"] == fmt  # the request is voicemode's own, unchanged
    assert all(len(p) <= 4096 and len(p) % 2 == 0 for p in pieces) and len(pieces) > 3  # as it arrives, capped
    got = np.frombuffer(b"".join(pieces), dtype="<i2").astype(np.float32) / 32768.0
    whole = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE, content_type=None)
    want = np.concatenate([whole.feed(body), whole.flush()])
    assert len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1.5 / 32768)


# -- the patch of voicemode's streaming module ---------------------------------------------------------------
def fake_streaming() -> Any:
    module = types.ModuleType("voice_mode.streaming")
    calls: list[dict[str, Any]] = []

    async def stream_tts_audio(text: str, openai_client: Any, request_params: dict, debug: bool = False,
                               save_audio: bool = False, audio_dir: Any = None, conversation_id: Any = None) -> Any:
        calls.append({"who": "original", "client": openai_client})
        return True, None

    async def stream_pcm_audio(text: str, openai_client: Any, request_params: dict, debug: bool = False,
                               save_audio: bool = False, audio_dir: Any = None, conversation_id: Any = None) -> Any:
        calls.append({"who": "pcm loop", "client": openai_client, "params": request_params, "save": save_audio})
        return True, None

    module.sd = types.SimpleNamespace(OutputStream=RealStream, query_devices=lambda: ["a device"])
    module.stream_tts_audio, module.stream_pcm_audio, module.SAMPLE_RATE = stream_tts_audio, stream_pcm_audio, RATE
    module.calls = calls
    return module


async def test_every_format_goes_down_voicemodes_own_pcm_loop_with_a_decoding_client(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    module = fake_streaming()
    real_sd = module.sd
    assert patch.install(module) and patch.install(module)  # twice: harmless
    assert module.sd.query_devices() == ["a device"]  # the rest of sounddevice is sounddevice's
    assert isinstance(module.sd.OutputStream(samplerate=RATE, channels=1, dtype="int16"), EngineOutputStream)
    assert module.sd._real is real_sd
    ok, _ = await module.stream_tts_audio("hi", "the client", {"response_format": "mp3", "voice": "alloy"},
                                          save_audio=True)
    (call,) = module.calls
    assert ok and call["who"] == "pcm loop" and call["save"] is True
    assert isinstance(call["client"], DecodingClient) and call["client"].format == "mp3"
    assert call["params"] == {"response_format": "mp3", "voice": "alloy"}  # voicemode's request, unchanged


async def test_off_or_on_an_unknown_module_voicemode_is_left_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_streaming()
    original = module.stream_tts_audio
    monkeypatch.setenv("WORKBENCH_VOICEMODE_BRIDGE", "off")
    assert not patch.install(module) and module.stream_tts_audio is original
    monkeypatch.delenv("WORKBENCH_VOICEMODE_BRIDGE")
    del module.stream_pcm_audio  # a voicemode whose streaming module is not the one read
    assert not patch.install(module) and module.stream_tts_audio is original and module.sd.OutputStream is RealStream


async def test_a_format_the_engine_cannot_decode_here_plays_voicemodes_own_way(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_streaming()
    patch.install(module)
    monkeypatch.setattr("workbench.bridge.patch.can_decode", lambda fmt: "PyAV is not installed")
    await module.stream_tts_audio("hi", "the client", {"response_format": "opus"})
    assert module.calls[-1]["who"] == "original" and module.calls[-1]["client"] == "the client"


# -- what is published ---------------------------------------------------------------------------------------
def test_the_replies_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workbench.bridge.publish.MAX_BYTES", 2000)
    where = tmp_path / "voicemode"
    pub = Publisher(where)
    for i in range(100):
        pub.reply(ReplyFigures(played_ms=float(i)))
    assert (where / "replies.jsonl").stat().st_size < 3000 and (where / "replies.1.jsonl").exists()
    assert read_replies(where)[-1].played_ms == 99.0
    assert len(list(where.iterdir())) == 2  # never more than the file and the one before


def test_the_boot_hook_patches_only_voicemodes_streaming_module() -> None:
    from workbench.bridge import boot

    assert boot._Finder().find_spec("json", None) is None  # any other module loads as it always does


def test_the_device_starts_with_the_first_audio_and_a_stream_never_written_ends_at_once(
        tmp_path: Path, recorded: Recorder) -> None:
    out = engine_stream(tmp_path)
    out.start()  # voicemode opens and starts its stream before the request
    assert out.engine is not None and not out.engine.sink.running  # opened, not started: no silence queued yet
    time.sleep(0.1)
    # a lone first write that holds enough (not known to be fast, elastic playout starts with ~100 ms in
    # hand rather than slowing its first words); the ring can start once the pump has moved a block in
    out.write(int16(tone(0.2)))
    deadline = time.perf_counter() + 0.2
    while not out.engine.sink.running and time.perf_counter() < deadline:
        time.sleep(0.005)
    assert out.engine.sink.running
    out.stop()
    heard = recorded.samples()
    assert np.flatnonzero(heard)[0] < 480  # the first audio in the first block the device played

    empty = engine_stream(tmp_path)
    empty.start()
    t = time.perf_counter()
    empty.stop()  # a reply that brought no audio: nothing to wait for
    assert time.perf_counter() - t < 0.5 and empty.engine is not None and empty.engine.closed
