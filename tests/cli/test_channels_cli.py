"""Stereo from a server we did not write: FFmpeg's own HTTP server (`-listen 1 -method POST`) answers
`/v1/audio/speech` with a 440 Hz left, 660 Hz right test signal in each format, and `workbench play
--channels stereo` writes it to a WAV file with each channel's own tone; without it, mono."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from .test_cli import run

# what FFmpeg is asked to send for each format, and the Content-Type it says (PCM's carries rate and channels)
OUTPUTS = {
    "pcm": ["-f", "s16le", "-content_type", "audio/pcm;rate=24000;channels=2"],
    "wav": ["-f", "wav", "-content_type", "audio/wav"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3", "-content_type", "audio/mpeg"],
    "opus": ["-c:a", "libopus", "-b:a", "96k", "-page_duration", "20000", "-f", "ogg", "-content_type", "audio/ogg"],
    "flac": ["-f", "flac", "-content_type", "audio/flac"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ffmpeg is not installed (scripts/setup.sh --dev installs it)")
        pytest.skip("ffmpeg is not installed")
    return path


def serve(ffmpeg: str, fmt: str, port: int) -> subprocess.Popen[bytes]:
    """FFmpeg serving one POST of the stereo test signal (1.5 s), then exiting."""
    signal = [arg for hz in (440, 660)
              for arg in ("-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=24000:duration=1.5")]
    return subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", *signal, "-filter_complex",
                             "[0][1]join=inputs=2:channel_layout=stereo", *OUTPUTS[fmt], "-method", "POST",
                             "-listen", "1", f"http://127.0.0.1:{port}/v1/audio/speech"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def listening(port: int) -> bool:
    """Whether something listens on the port (read from /proc: connecting would take FFmpeg's one client)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)


@pytest.fixture
def stereo_server(ffmpeg: str) -> Iterator[Callable[[str], str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(fmt: str) -> str:
        port = free_port()
        procs.append(serve(ffmpeg, fmt, port))
        deadline = time.monotonic() + 10
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def channels_of(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels()) / 32768


def peak_hz(channel: np.ndarray, rate: int = 24_000) -> float:
    spectrum = np.abs(np.fft.rfft(channel * np.hanning(len(channel))))
    return float(np.fft.rfftfreq(len(channel), 1 / rate)[int(spectrum.argmax())])


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_a_stereo_stream_from_ffmpeg_keeps_a_tone_in_each_channel(stereo_server: Callable[[str], str], fmt: str,
                                                                  tmp_path: Path) -> None:
    start = stereo_server
    out = tmp_path / "stereo.wav"
    result = run("play", "--base-url", start(fmt), "--format", fmt, "--channels", "stereo", "--sink", f"wav:{out}",
                 "--no-cache", "--split", "off", "--no-voicemode-env", "test")
    assert result.returncode == 0, result.stderr
    assert "stereo: a stereo stream, its own channels" in result.stdout
    frames = channels_of(out)
    assert frames.shape[1] == 2 and len(frames) > 1.4 * 24_000
    middle = frames[len(frames) // 4 : 3 * len(frames) // 4]
    assert abs(peak_hz(middle[:, 0]) - 440) < 3 and abs(peak_hz(middle[:, 1]) - 660) < 3


def test_without_stereo_the_same_stream_is_averaged_to_mono(stereo_server: Callable[[str], str],
                                                            tmp_path: Path) -> None:
    start = stereo_server
    out = tmp_path / "mono.wav"
    result = run("play", "--base-url", start("wav"), "--format", "wav", "--sink", f"wav:{out}", "--no-cache",
                 "--split", "off", "--no-voicemode-env", "test")
    assert result.returncode == 0, result.stderr
    assert "a stereo stream, averaged to mono" in result.stdout
    frames = channels_of(out)
    assert frames.shape[1] == 1
    spectrum = np.abs(np.fft.rfft(frames[len(frames) // 4 : 3 * len(frames) // 4, 0]))
    freqs = np.fft.rfftfreq(len(frames) // 2, 1 / 24_000)
    top = sorted(round(float(freqs[i])) for i in np.argsort(spectrum)[-2:])
    assert abs(top[0] - 440) < 3 and abs(top[1] - 660) < 3  # both tones, in the one channel


def test_a_bad_pan_is_one_line() -> None:
    result = run("play", "--pan", "far-left", "--no-voicemode-env", "test")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--pan" in result.stderr and "-1 (left) to 1 (right)" in result.stderr
