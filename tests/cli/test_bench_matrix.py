"""`workbench bench` (the matrix): a tiny real run end to end, its bad input, and its picture."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from workbench.bench.matrix import _ratio, parse_settings, plot_svg

from .test_cli import assert_clean_error, run


def test_quick_matrix_measures_every_setting_and_both_baselines(tmp_path: Path) -> None:
    result = run("bench", "--quick", "--formats", "pcm", "--networks", "lan", "--settings", "150,adaptive",
                 "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["suite"] == "matrix" and data["settings"] == ["150 ms", "adaptive", "buffered", "naive"]
    cells = {c["setting"]: c for c in data["cells"]}
    assert set(cells) == set(data["settings"]) and all(c["plays"] == 1 and c["failed"] == 0 for c in cells.values())
    assert all(c["ttfa_ms"] > 0 for c in cells.values())
    # the first sound comes after the first sample (the reply's own short silence); each with its spread
    assert all(c["first_sound_ms"] >= c["ttfa_ms"] and c["first_sound_iqr_ms"] == 0 for c in cells.values())
    assert all(c["ttfa_p90_ms"] == c["ttfa_ms"] and c["request_sent_ms"] > 0 for c in cells.values())  # one play
    # buffered waits for the whole download: the streamed settings start sooner, and say by how much
    assert cells["150 ms"]["ttfa_buffered_over_this"] > 1
    assert cells["buffered"]["ttfa_buffered_over_this"] == 1
    head = data["headline"]["pcm"]
    assert head["buffered_ttfa_ms"] > head["streamed_ttfa_ms"] > 0 and head["buffered_over_streamed"] > 1
    markdown = (tmp_path / "matrix.md").read_text()
    assert "| pcm | lan | naive |" in markdown and "headline, pcm" in markdown
    assert "TTFA P50 (IQR; P90) ms | first sound P50 (IQR; P90) ms" in markdown
    svg = ET.parse(tmp_path / "matrix.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    circles = [c for c in svg.iter(f"{ns}circle") if c.find(f"{ns}title") is not None]
    assert len(circles) == 4  # one point per setting (and baseline) on the one network
    assert "matrix: [" in result.stderr  # the progress bar


def test_an_auto_row_plays_as_the_chooser_says(tmp_path: Path) -> None:
    result = run("bench", "--formats", "auto", "--networks", "edge", "--settings", "elastic", "--plays", "2",
                 "--no-headline", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    cells = {c["setting"]: c for c in json.loads((tmp_path / "matrix.json").read_text())["cells"]}
    assert all(c["format"] == "auto" and c["plays"] == 2 and c["failed"] == 0 for c in cells.values())
    assert "| auto | edge | elastic |" in (tmp_path / "matrix.md").read_text()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--settings", "150,fast"], "unknown setting 'fast'"),
    (["--formats", "ogg"], "unknown format ogg"),
    (["--networks", "moon"], "unknown network profile moon"),
    (["--settings", "preset:nope"], "nope"),
    (["--pace", "0"], "--pace"),
    (["--plays", "0"], "--plays must be at least 1"),
    (["engine", "--plays", "0"], "--plays must be at least 1"),
])
def test_bad_matrix_input_is_a_clear_error(tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_clean_error(run("bench", *args, "--out", str(tmp_path), timeout=60), 2, fragment)


def test_settings_parse_buffers_adaptive_and_presets() -> None:
    fixed, adaptive, preset = parse_settings("200, adaptive, preset:4g")
    assert fixed.label == "200 ms" and fixed.overrides == {"playout": "fixed", "buffer_ms": 200, "adaptive": False}
    assert adaptive.overrides == {"playout": "fixed", "adaptive": True}
    assert preset.label == "4g" and "buffer_ms" in preset.overrides
    assert "audio_format" not in preset.overrides and "network" not in preset.overrides  # the matrix's axes


def test_settings_parse_elastic_and_fixed_playout() -> None:
    elastic, pinned, fixed = parse_settings("elastic, elastic:300, fixed:150")
    assert elastic.label == "elastic" and elastic.overrides == {"playout": "elastic", "adaptive": True}
    assert pinned.overrides == {"playout": "elastic", "buffer_ms": 300, "adaptive": False}
    assert fixed.label == "150 ms" and fixed.overrides["playout"] == "fixed"
    with pytest.raises(ValueError, match="unknown setting 'elastic:x'"):
        parse_settings("elastic:x")


def test_ratios_say_when_only_one_side_underran() -> None:
    assert _ratio(300.0, 100.0) == 3.0
    assert _ratio(50.0, 0.0) == math.inf  # naive underran, ours did not
    assert _ratio(0.0, 0.0) is None  # neither: nothing to compare


def test_the_plot_places_points_by_ttfa_and_log_underruns() -> None:
    cells = [{"setting": s, "network": "wifi", "ttfa_ms": t, "underrun_ms_per_min": u}
             for s, t, u in (("150 ms", 400.0, 0.0), ("naive", 100.0, 999.0), ("buffered", 2000.0, 0.0))]
    root = ET.fromstring(plot_svg(cells, "t"))
    ns = "{http://www.w3.org/2000/svg}"
    points = {c.find(f"{ns}title").text.split(",")[0]: (float(c.get("cx")), float(c.get("cy")))  # type: ignore[union-attr]
              for c in root.iter(f"{ns}circle") if c.find(f"{ns}title") is not None}
    assert points["naive"][0] < points["150 ms"][0] < points["buffered"][0]  # left to right by TTFA
    assert points["naive"][1] < points["150 ms"][1] == points["buffered"][1]  # underruns higher up


def test_stress_and_soak_tiny_runs_write_well_formed_results(tmp_path: Path) -> None:
    result = run("bench", "stress", "--streams", "1,2", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "stress.json").read_text())
    assert [r["streams"] for r in data["rows"]] == [1, 2] and all(r["failed"] == 0 for r in data["rows"])
    assert all(r["client_cpu_pct_per_stream"] > 0 and r["server_cpu_pct"] >= 0 for r in data["rows"])
    assert "| where it stops keeping up |" in (tmp_path / "stress.md").read_text()
    result = run("bench", "soak", "--minutes", "0.3", "--speed", "10", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    soak = json.loads((tmp_path / "soak.json").read_text())
    assert soak["audio_min"] >= 0.3 and soak["metrics"]["state"] == "done" and len(soak["samples"]) > 2
    assert soak["rss_mb_first"] > 0 and soak["rss_mb_max"] >= soak["rss_mb_first"]
    assert_clean_error(run("bench", "stress", "--streams", "0", "--out", str(tmp_path), timeout=60), 2, "--streams")


def test_spread_is_p50_iqr_and_p90() -> None:
    from workbench.engine.figures.metrics import spread

    assert spread([]) == {"p50": None, "iqr": None, "p90": None}
    values = [float(v) for v in range(1, 11)]  # 1..10: quartiles 3.25 and 7.75 (linear interpolation)
    assert spread(values) == {"p50": 5.5, "iqr": 4.5, "p90": pytest.approx(9.1)}


def test_cold_times_a_one_shot_plays_request_against_the_clis_own_start(tmp_path: Path) -> None:
    result = run("bench", "cold", "--plays", "1", "--sink", "virtual", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "cold.json").read_text())
    # the request came whole (the listener parsed its JSON) after an interpreter had started
    assert len(data["play_ms"]) == len(data["help_ms"]) == len(data["bare_ms"]) == 1
    assert data["play_ms"][0] > data["bare_ms"][0] > 0 and data["help_ms"][0] > data["bare_ms"][0]
    assert "| play / --help |" in (tmp_path / "cold.md").read_text()


def test_cache_plays_phrases_again_from_the_cache_against_the_endpoint(tmp_path: Path) -> None:
    result = run("bench", "cache", "--quick", "--plays", "2", "--sink", "virtual", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "cache.json").read_text())
    n = len(data["phrases"])
    assert data["misses"] == n and data["hits"] == n and data["entries"] == n  # the second round all hits
    assert len(data["ttfa_hit_ms"]) == n and len(data["ttfa_network_ms"]) == 2 * n
    assert "| TTFA, endpoint / cache |" in (tmp_path / "cache.md").read_text()


def test_channels_measures_stereo_against_mono_and_the_placed_voice_as_played(tmp_path: Path) -> None:
    result = run("bench", "channels", "--plays", "1", "--sink", "virtual", "--text", "one two three",
                 "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "channels.json").read_text())
    assert set(data["cpu_per_audio_s"]) == {"mono", "stereo", "placed -0.5"}
    assert all(cpu > 0 for cpu in data["cpu_per_audio_s"].values())
    # what the sink played is at the gains: one measured ratio, within 2 %
    (ratio,) = data["placed_level_ratio"]
    assert abs(ratio - data["placed_gain_ratio"]) < 0.02 * data["placed_gain_ratio"]
    assert "| stereo: CPU per second of audio |" in (tmp_path / "channels.md").read_text()
