"""Shared fixtures: a fast embedded server, hermetic settings, helpers for the test signal."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workbench.engine.output.sinkfactory import sink_factory
from workbench.engine.output.sinks import Sink
from workbench.engine.settings import Settings, load_settings
from workbench.server.app import Knobs
from workbench.server.runner import EmbeddedServer
from workbench.server.speech import OUTPUT_RATE, TEST_TONE_AMPLITUDE, TEST_TONE_HZ

# knobs for tests: a quick server (the defaults mimic a real one and would only slow the suite down)
FAST = Knobs(ttfb_ms=20.0, pace=0.05, flush_ms=10.0)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's voicemode files or WORKBENCH_/VOICEMODE_ variables."""
    for key in list(os.environ):
        if key.startswith(("VOICEMODE_", "WORKBENCH_")) or key in ("OPENAI_API_KEY", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(knobs=FAST) as srv:
        yield srv


def make_settings(**overrides: object) -> Settings:
    return load_settings(environ={}, read_voicemode_files=False, overrides=overrides)


def virtual_factory(speed: float = 4.0):  # type: ignore[no-untyped-def]
    """A sink factory for players in tests: a fast virtual device that records what it played; the
    sinks it made are in `factory.made`."""
    made: list[Sink] = []
    factory = sink_factory("virtual", speed=speed, record=True, made=made)
    factory.made = made  # type: ignore[attr-defined]
    return factory


def expected_tone(n: int, rate: int = OUTPUT_RATE) -> np.ndarray:
    """The server's test signal as a client decodes it from s16le (quantised like the server)."""
    idx = np.arange(n, dtype=np.float64)
    tone = TEST_TONE_AMPLITUDE * np.sin(2.0 * math.pi * TEST_TONE_HZ / rate * idx)
    return (np.round(tone * 32767.0) / 32768.0).astype(np.float32)


def tone_onset(recorded: np.ndarray) -> int:
    """Index where the test signal starts (its first sample is exactly zero, the next is not)."""
    nonzero = np.flatnonzero(recorded)
    assert len(nonzero), "nothing but silence was played"
    return int(nonzero[0]) - 1
