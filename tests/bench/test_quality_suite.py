"""`bench quality`'s judge (`listening`): the tempo of every part of a play found by aligning it with the
reply, silences told apart from slowing; the speech-quality models; the suite end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soxr

from workbench.bench import listening
from workbench.server import speech

from ..cli.test_cli import run

RATE = speech.OUTPUT_RATE
HOP = int(RATE * listening.HOP_S)
need_models = pytest.mark.skipif(
    listening.models_missing() is not None and os.environ.get("WORKBENCH_REQUIRE_QUALITY") != "1",
    reason="the quality extra is not installed (./test.sh installs it; CI requires it)")


@pytest.fixture(scope="module")
def reply() -> np.ndarray:
    text = "I read the file and changed the buffer. The tests pass now, and the reply starts sooner."
    return listening.sounding(np.concatenate(list(speech.synthesize(text, "alloy"))), RATE)


def _runs(x: np.ndarray, speaking: bool) -> list[tuple[int, int]]:
    levels = listening.frame_levels_db(x, RATE)
    flags = levels > np.percentile(levels, 95) - listening.SPEECH_BELOW_PEAK_DB
    return [(s, e) for s, e, v in listening._runs(flags) if v == speaking and s > 0 and e < len(flags)]


def test_a_play_that_is_the_reply_added_nothing_anywhere(reply: np.ndarray) -> None:
    t = listening.tempo(reply, reply, RATE)
    assert t.added_s == 0 and t.removed_s == 0 and t.gap_ms == 0 and t.first_second_slowed_ms == 0
    assert t.speech_off_band_pct == 0 and t.slowest == 1.0 and t.speech_s > 2 * t.pause_s > 0


def test_a_lengthened_pause_is_time_added_in_a_pause_and_leaves_speech_at_its_tempo(reply: np.ndarray) -> None:
    start, end = max(_runs(reply, False), key=lambda r: r[1] - r[0])
    at = (start + end) // 2 * HOP
    played = np.concatenate([reply[:at], np.zeros(int(0.3 * RATE), np.float32), reply[at:]])
    t = listening.tempo(reply, played, RATE)
    assert t.added_s == pytest.approx(0.3, abs=0.03) and t.added_in_pauses_pct == pytest.approx(100.0)
    assert t.speech_off_band_pct == 0 and t.gap_ms == 0


def test_silence_inside_a_word_is_a_gap_not_slowing(reply: np.ndarray) -> None:
    start, end = max(_runs(reply, True), key=lambda r: r[1] - r[0])
    at = (start + end) // 2 * HOP
    played = np.concatenate([reply[:at], np.zeros(int(0.2 * RATE), np.float32), reply[at:]])
    t = listening.tempo(reply, played, RATE)
    assert t.gap_ms == pytest.approx(200, abs=30) and t.added_s < 0.05 and t.speech_off_band_pct < 1


def test_speech_played_at_half_speed_is_found_where_it_is(reply: np.ndarray) -> None:
    start, end = max(_runs(reply, True), key=lambda r: r[1] - r[0])
    a, b = start * HOP, end * HOP
    slowed = soxr.resample(reply[a:b], RATE, 2 * RATE)  # twice as long (lower too: the alignment copes)
    played = np.concatenate([reply[:a], slowed, reply[b:]])
    t = listening.tempo(reply, played, RATE)
    share = 100.0 * (end - start) * listening.HOP_S / t.speech_s
    assert t.added_s == pytest.approx((b - a) / RATE, rel=0.15) and (t.added_in_pauses_pct or 0) < 10
    assert share * 0.7 < t.speech_off_band_pct < share * 1.3 and t.slowest < 0.7


def test_only_speech_played_slower_counts_as_slowed_in_the_first_second(reply: np.ndarray) -> None:
    start, end = _runs(reply, False)[0]  # the first pause, inside the first second
    assert end * listening.HOP_S < 0.8
    at = (start + end) // 2 * HOP
    lengthened = np.concatenate([reply[:at], np.zeros(int(0.15 * RATE), np.float32), reply[at:]])
    assert listening.tempo(reply, lengthened, RATE).first_second_slowed_ms == 0
    slowed = np.concatenate([soxr.resample(reply[:start * HOP], RATE, RATE * 4 // 3), reply[start * HOP:]])
    expected = min(1.0, start * listening.HOP_S * 4 / 3) * 250  # a quarter of the slowed speech heard is added
    assert listening.tempo(reply, slowed, RATE).first_second_slowed_ms == pytest.approx(expected, abs=40)


@need_models
def test_the_models_hear_packet_loss_and_score_the_same_audio_the_same(reply: np.ndarray) -> None:
    lossy = reply.copy()
    for k in range(0, len(lossy) // (RATE // 50), 4):  # every fourth 20 ms frame lost
        lossy[k * (RATE // 50):(k + 1) * (RATE // 50)] = 0.0
    clean, again, lost = (listening.scores(x, RATE) for x in (reply, reply, lossy))
    assert clean == again
    assert lost.plcmos < clean.plcmos - 0.5 and 1.0 <= lost.plcmos and clean.plcmos <= 5.0


@need_models
def test_bench_quality_plays_each_player_and_judges_it_against_the_reply(tmp_path: Path) -> None:
    result = run("bench", "quality", "--quick", "--settings", "fast", "--text", "The tests pass. I will push it now.",
                 "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["voice"] == "joe" and len(data["reply_s"]) == 1 and 1.0 < data["reply_s"][0] < 5.0
    cells = {c["player"]: c["plays"][0] for c in data["cells"]}
    assert set(cells) == {"naive", "fixed", "elastic"}
    for who, judged in cells.items():  # 5x real time: only naive may run dry (between the first bursts)
        assert judged["tempo"]["gap_ms"] < 50 and (judged["underrun_ms"] == 0 or who == "naive")
        assert abs(judged["tempo"]["speech_s"] - data["reply_s"][0]) < 1.5 and 1.0 <= judged["scores"]["plcmos"] <= 5.0
    assert "fast: elastic's speech outside 0.9-1.1x" in (tmp_path / "quality.md").read_text()


def test_bench_quality_refuses_a_sink_it_does_not_use(tmp_path: Path) -> None:
    result = run("bench", "quality", "--sink", "device", "--out", str(tmp_path))
    assert result.returncode == 2 and "--sink does not apply" in result.stderr
