"""Pilot tests: the workbench driven by keys and clicks against the embedded server.

Plays go to a fast virtual sink (4x real time); everything else (HTTP, decoding, buffer, player) is real.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Button, DataTable, Input, Label, Select, Switch

from tests.conftest import virtual_factory
from workbench.engine.decoding.layout import Layout
from workbench.engine.envfile import parse_env_text
from workbench.engine.settings import Settings
from workbench.server.runner import EmbeddedServer
from workbench.tui.app import AppConfig, WorkbenchApp, create_app
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.presets import ApplyScreen, ExportScreen, LoadPresetScreen
from workbench.tui.widgets.counters import Counters, KeyFigures
from workbench.tui.widgets.settings_panel import SettingsPanel
from workbench.usecases.presets import load_preset

SIZE = (140, 44)
SHORT = "Short test."
LONG = "This sentence is long enough to take several seconds to say, so that we can stop it midway. " * 3


def make_app(server: EmbeddedServer, tmp_path: Path, text: str = SHORT, speed: float = 4.0,
             **settings: object) -> WorkbenchApp:
    config = AppConfig(settings=Settings(**{"voices": ("test-signal",), **settings}), text=text,
                       local_url=server.base_url, start_server=False, sink_factory=virtual_factory(speed),
                       save_dir=tmp_path, voicemode_env=tmp_path / "voicemode.env")
    return create_app(config)


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


async def confirm_in(pilot, field: Input) -> None:  # type: ignore[no-untyped-def]
    """Enter in a dialog's field."""
    field.focus()
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


async def start_playing(pilot, app: WorkbenchApp) -> None:  # type: ignore[no-untyped-def]
    """Press p and wait until sound is coming out."""
    await pilot.press("p")
    await wait_for(pilot, lambda: app.session.runs[-1].state == "playing")


async def confirm(pilot, app: WorkbenchApp, field: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Type `text` into a settings field and press Enter, as a user does; the focus then goes back to Play."""
    box = app.query_one(f"#{field}", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    app.query_one("#play").focus()
    await pilot.pause()


async def run_compare(pilot, app: WorkbenchApp, b: str, timeout: float = 20.0) -> CompareScreen:  # type: ignore[no-untyped-def]
    """c, B set to `b`, r: both sides played."""
    await pilot.press("c")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    screen.query_one("#b", Select).value = b
    await pilot.pause()
    await pilot.press("r")
    await wait_for(pilot, lambda: finished(app, 2), timeout=timeout)
    await pilot.pause()
    return screen


async def open_apply(pilot) -> None:  # type: ignore[no-untyped-def]
    """e, then Apply to voicemode…: the apply dialog with its diff."""
    await pilot.press("e")
    await pilot.pause()
    await pilot.click("#apply")
    await pilot.pause()


def finished(app: WorkbenchApp, n: int = 1) -> bool:
    return len(app.session.runs) >= n and all(r.metrics is not None for r in app.session.runs[:n])


async def test_play_shows_metrics_history_and_graph(server: EmbeddedServer, tmp_path: Path) -> None:
    # a 2x virtual sink: at 4x, elastic playout's pump thread can fall a block behind a busy test process
    # (issue 13), an underrun of the sped-up clock, not of the workbench
    app = make_app(server, tmp_path, speed=2.0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        run = app.session.runs[0]
        assert run.metrics is not None and run.metrics.state == "done", run.metrics
        assert run.metrics.ttfa_ms is not None and run.metrics.underruns == 0
        assert len(run.trace) >= 2 and max(run.trace.level_ms) > 0  # the graph got live data
        assert app.query_one(Counters).values["state"] == "done"
        table = app.query_one("#history", DataTable)
        assert table.row_count == 1 and table.get_row_at(0)[-1] == "done"


async def test_stop_and_replay(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text=LONG, speed=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await start_playing(pilot, app)
        await pilot.press("s")
        await wait_for(pilot, lambda: finished(app))
        first = app.session.runs[0].metrics
        assert first is not None and first.state == "stopped"
        assert first.played_ms < first.audio_ms or first.audio_ms < 10_000  # cut short
        app.query_one("#text").text = "Something else."  # type: ignore[attr-defined]
        await pilot.press("r")  # replay: the last text again, not the text box
        await wait_for(pilot, lambda: len(app.session.runs) == 2)
        assert app.session.runs[1].text == LONG
        await pilot.press("s")
        await wait_for(pilot, lambda: finished(app, 2))


async def test_k_pauses_the_play_where_it_is_and_resumes_it(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text=LONG, speed=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await start_playing(pilot, app)
        await pilot.press("k")
        await wait_for(pilot, lambda: app.query_one(Counters).values["state"] == "paused")
        assert "paused" in str(app.query_one("#message").render())
        player = app.session.player
        assert player is not None and player.buffer is not None  # type: ignore[union-attr]
        held = player.buffer.played_samples  # type: ignore[union-attr]
        await pilot.pause(0.3)
        assert player.buffer.played_samples == held  # type: ignore[union-attr]
        await pilot.press("k")
        await wait_for(pilot, lambda: player.buffer.played_samples > held)  # type: ignore[union-attr]
        await pilot.press("s")
        await wait_for(pilot, lambda: finished(app))
        m = app.session.runs[0].metrics
        assert m is not None and m.paused_ms >= 250 and m.underrun_ms == 0
        assert "paused 0." in app.query_one(Counters).values["underruns"]  # the counters say how long


async def test_replay_before_any_play_explains(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert not app.session.runs
        assert "nothing to replay" in str(app.query_one("#message").render())


async def test_an_edit_applies_when_confirmed_and_a_refused_one_keeps_the_last(server: EmbeddedServer,
                                                                               tmp_path: Path) -> None:
    """Issue 15: clearing 150 and typing -5 never plays anything on the way; a refused value leaves the
    last good one in use, and the field and hint say so; Enter or leaving the field applies."""
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        box = app.query_one("#buffer_ms", Input)
        hint = app.query_one("#buffer_ms-hint", Label)
        box.focus()
        box.value = ""
        for key in ("minus", "5"):
            await pilot.press(key)
        await pilot.pause()
        assert box.value == "-5" and hint.has_class("-invalid")
        assert "'150' stays in use" in str(hint.render())
        assert app.session.current_settings().buffer_ms == 150  # nothing applied while typing
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.current_settings().buffer_ms == 150 and box.value == "-5"
        app.query_one("#play").focus()  # leaving the field puts the value in use back
        await pilot.pause()
        assert box.value == "150" and hint.has_class("-invalid") and "'-5' refused" in str(hint.render())
        box.focus()
        box.value = "abc"  # shown, with the reason, not silently dropped
        await pilot.pause()
        assert box.value == "abc" and hint.has_class("-invalid")
        box.value = "30"
        await pilot.pause()
        assert not hint.has_class("-invalid") and "Enter" in str(hint.render())
        assert app.session.current_settings().buffer_ms == 150  # typed "3" then "30": neither applied yet
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.current_settings().buffer_ms == 30 and "Enter" not in str(hint.render())
        await confirm(pilot, app, "max_buffer_s", "0.01")  # refused by its own range: 2 s stays
        assert app.session.current_settings().max_buffer_s == 2.0
        await confirm(pilot, app, "buffer_ms", "300")
        await confirm(pilot, app, "max_buffer_s", "0.1")  # now smaller than the initial buffer
        assert "must fit in the maximum buffer" in str(app.query_one("#message").render())
        # refused with the rest: the field shows the value still in use, and its hint says why
        assert app.query_one("#max_buffer_s", Input).value == "2" and app.session.current_settings().max_buffer_s == 2
        assert "'2' stays in use" in str(app.query_one("#max_buffer_s-hint", Label).render())
        await pilot.press("p")  # plays with the values in use
        await wait_for(pilot, lambda: finished(app))
        assert (app.session.runs[0].settings.buffer_ms, app.session.runs[0].settings.max_buffer_s) == (300, 2.0)


async def test_each_format_keeps_its_own_stream_settings(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await confirm(pilot, app, "buffer_ms", "300")
        app.query_one("#audio_format", Select).value = "wav"
        await pilot.pause()
        assert app.query_one("#buffer_ms", Input).value == "150"  # wav's own value
        await confirm(pilot, app, "buffer_ms", "500")
        app.query_one("#audio_format", Select).value = "pcm"
        await pilot.pause()
        assert app.query_one("#buffer_ms", Input).value == "300"
        assert app.session.current_settings().buffer_ms == 300 and app.session.current_settings().audio_format == "pcm"
        assert app.session.profiles["wav"].buffer_ms == 500


async def test_an_applied_value_says_so_and_a_format_change_says_which_values_it_plays_with(
        server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        key_line = app.query_one(KeyFigures)
        assert ("initial buffer", "150 ms", "") in key_line.parts()
        await confirm(pilot, app, "buffer_ms", "50")
        assert str(app.query_one("#message").render()) == "initial buffer 50 applied to pcm: the next play uses it"
        assert ("initial buffer", "50 ms", "") in key_line.parts()
        app.query_one("#audio_format", Select).value = "mp3"
        await pilot.pause()
        assert str(app.query_one("#message").render()) == (
            "mp3 plays with its own values: initial buffer 150 ms, chunk size 4096 B, max buffer 2 s; pcm keeps "
            "its 50 ms · o carries pcm's over")
        assert ("initial buffer", "150 ms", "") in key_line.parts()
        app.query_one("#play").focus()
        await pilot.press("o")
        await pilot.pause()
        assert app.query_one("#buffer_ms", Input).value == "50" and app.session.current_settings().buffer_ms == 50
        assert ("initial buffer", "50 ms", "") in key_line.parts()
        assert str(app.query_one("#message").render()).startswith("mp3 now uses pcm's values: initial buffer 50 ms")


async def test_initial_buffer_applies_live(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text=LONG, speed=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: app.session.player is not None and app.session.player.buffer is not None)
        await confirm(pilot, app, "buffer_ms", "700")
        assert app.session.player is not None and app.session.player.feed is not None
        # elastic playout (the default) grows to the new target; fixed playout would start at it
        assert app.session.player.feed.target_ms == pytest.approx(700, abs=1)
        await pilot.press("s")
        await wait_for(pilot, lambda: finished(app))


async def test_a_live_edit_does_not_outlive_its_play(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        assert app.session.player is not None
        app.session.player.set_initial_buffer_ms(700)  # as a live edit of the initial buffer would
        await pilot.press("p")  # same settings in the panel (150 ms): the same player is reused
        await wait_for(pilot, lambda: finished(app, 2))
        assert app.session.runs[1].metrics is not None and app.session.runs[1].metrics.initial_buffer_ms == 150


async def test_unreachable_endpoint_is_an_error_in_the_app(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await confirm(pilot, app, "endpoint", "http://127.0.0.1:9/v1")
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        m = app.session.runs[0].metrics
        assert m is not None and m.state == "failed" and m.error
        message = str(app.query_one("#message").render())
        assert "run 1" in message and "127.0.0.1:9" in message
        await confirm(pilot, app, "endpoint", "local")  # and the app goes on working
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app, 2))
        assert app.session.runs[1].metrics is not None and app.session.runs[1].metrics.state == "done"


async def test_compare_runs_a_then_b_and_saves(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_compare(pilot, app, "format:wav")
        assert [r.label for r in app.session.runs] == ["A", "B"]
        assert [r.settings.audio_format for r in app.session.runs] == ["pcm", "wav"]
        assert app.session.runs[0].settings.network == app.session.runs[1].settings.network
        table = screen.query_one("#compare-table", DataTable)
        assert table.row_count > 10
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        # the results a listener meets first, then the other figures, then what each side used
        assert labels[:5] == ["first sound (-50 dBFS)", "TTFA (first sample)", "underruns", "underrun time",
                              "played stretched"]
        setup = labels.index("format")
        assert setup > labels.index("bytes received") and labels[setup + 1] == "initial buffer"
        assert [str(c) for c in table.get_row_at(setup)[1:4]] == ["pcm", "wav", "differs"]
        await pilot.press("w")
        await pilot.pause()
        saved = sorted((tmp_path / "compare-results").iterdir())
        assert [p.suffix for p in saved] == [".json", ".md"]
        data = json.loads(saved[0].read_text())
        assert data["a"]["name"] == "pcm" and data["b"]["name"] == "wav"
        markdown = saved[1].read_text()
        assert "| TTFA (first sample) |" in markdown and "| format | pcm | wav |" in markdown
        assert "| network | none | none |" in markdown and "≈: within what two runs" in markdown
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_the_reply_cache_is_off_until_switched_on_then_a_text_played_again_comes_from_it(
        server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app, 1))
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app, 2))
        assert [r.metrics.cache for r in app.session.runs if r.metrics] == ["off", "off"]
        app.query_one("#use_cache", Switch).value = True
        await pilot.pause()
        for n in (3, 4):
            await pilot.press("p")
            await wait_for(pilot, lambda n=n: finished(app, n))  # type: ignore[misc]
        third, fourth = (r.metrics for r in app.session.runs[2:4])
        assert third is not None and fourth is not None and (third.cache, fourth.cache) == ("miss", "hit")
        assert app.query_one(Counters).values["format"] == "pcm (cache)"
        assert str(app.query_one("#history", DataTable).get_row_at(3)[1]) == "pcm cache"
        assert "WORKBENCH_CACHE" not in app.session.current_preset("x").values  # a session's choice only


async def test_compare_says_what_auto_chose_and_why(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, network="edge", text="one two")
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_compare(pilot, app, "format:auto", timeout=60)
        b = app.session.runs[1]
        assert b.settings.auto_format and b.metrics is not None and b.metrics.format == "pcm"
        table = screen.query_one("#compare-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:3]] for i in range(table.row_count)}
        assert rows["format"] == ["pcm", "auto"] and rows["auto chose"] == ["", "pcm"]
        assert "B: nothing measured yet: pcm" in str(screen.query_one("#compare-status").render())
        await pilot.press("w")
        await pilot.pause()
        markdown = next(p for p in (tmp_path / "compare-results").iterdir() if p.suffix == ".md").read_text()
        assert "B: --format auto chose pcm: nothing measured yet: pcm" in markdown


async def test_v_plays_voicemode_today_against_this_engine(server: EmbeddedServer, tmp_path: Path) -> None:
    """Issue 14: one key plays the text as voicemode 9.0 does, then as this engine does, and compares."""
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        await wait_for(pilot, lambda: finished(app, 2))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [r.settings.player for r in app.session.runs] == ["voicemode", "workbench"]
        assert [r.metrics.player for r in app.session.runs if r.metrics] == ["voicemode", "workbench"]
        assert app.session.runs[0].settings.audio_format == app.session.runs[1].settings.audio_format
        await pilot.press("w")
        await pilot.pause()
        data = json.loads(sorted((tmp_path / "compare-results").glob("*.json"))[0].read_text())
        assert data["a"]["name"] == "voicemode 9.0" and data["b"]["name"] == "this engine"


async def test_export_saves_a_preset_voicemode_reads(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await confirm(pilot, app, "buffer_ms", "220")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        target = tmp_path / "mine.env"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.click("#save")
        await pilot.pause()
        assert load_preset(target).values["VOICEMODE_STREAM_BUFFER_MS"] == "220"
        await pilot.pause(0.5)  # a second click at once would be a double click
        await pilot.click("#save")  # never overwrites without asking ...
        await pilot.pause()
        assert "already exists: Overwrite replaces it" in str(app.screen.query_one("#status").render())
        assert str(app.screen.query_one("#save", Button).label) == "Overwrite"
        await confirm_in(pilot, app.screen.query_one("#path", Input))  # ... asked, Enter replaces it
        assert str(app.screen.query_one("#status").render()) == f"replaced {target}"
        other = tmp_path / "other.env"
        app.screen.query_one("#path", Input).value = str(other)  # another name: Save again, and Enter saves
        await confirm_in(pilot, app.screen.query_one("#path", Input))
        assert other.is_file() and str(app.screen.query_one("#save", Button).label) == "Save"


async def test_apply_to_voicemode_shows_diff_then_backs_up(server: EmbeddedServer, tmp_path: Path) -> None:
    voicemode_env = tmp_path / "voicemode.env"
    original = "# mine\nOPENAI_API_KEY=sk-abc\nVOICEMODE_STREAM_BUFFER_MS=400\n"
    voicemode_env.write_text(original)
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_apply(pilot)
        assert isinstance(app.screen, ApplyScreen)
        assert "+VOICEMODE_STREAM_BUFFER_MS=150" in app.screen.plan.diff  # type: ignore[union-attr]
        assert voicemode_env.read_text() == original  # nothing written before the user says so
        await pilot.click("#do-apply")
        await pilot.pause()
        status = str(app.screen.query_one("#status").render())
        assert "Restart voicemode" in status
    values = parse_env_text(voicemode_env.read_text()).as_dict()
    assert values["VOICEMODE_STREAM_BUFFER_MS"] == "150" and values["OPENAI_API_KEY"] == "sk-abc"
    assert "WORKBENCH_NETWORK" not in values
    assert stat.S_IMODE(voicemode_env.stat().st_mode) == 0o600
    assert (tmp_path / "voicemode.env.bak").read_text() == original


async def test_after_apply_the_notes_say_what_the_file_is_now(server: EmbeddedServer, tmp_path: Path) -> None:
    voicemode_env = tmp_path / "voicemode.env"  # not there yet
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_apply(pilot)
        assert "does not exist yet" in str(app.screen.query_one("#notes").render())
        await pilot.click("#do-apply")
        await pilot.pause()
        assert voicemode_env.is_file()
        notes = str(app.screen.query_one("#notes").render())
        assert "does not exist yet" not in notes and "A backup is kept" in notes
        assert "no changes" in str(app.screen.query_one("#diff-text").render())


async def test_apply_refuses_a_malformed_voicemode_env(server: EmbeddedServer, tmp_path: Path) -> None:
    voicemode_env = tmp_path / "voicemode.env"
    voicemode_env.write_text("VOICEMODE_STREAM_BUFFER_MS=100 # trailing comment\n")
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_apply(pilot)
        assert app.screen.query_one("#do-apply").disabled
        assert "malformed" in str(app.screen.query_one("#status").render())
    assert voicemode_env.read_text() == "VOICEMODE_STREAM_BUFFER_MS=100 # trailing comment\n"


async def test_load_preset_sets_format_and_its_values(server: EmbeddedServer, tmp_path: Path) -> None:
    preset = tmp_path / "p.env"
    preset.write_text("# test\nVOICEMODE_TTS_AUDIO_FORMAT=wav\nVOICEMODE_STREAM_BUFFER_MS=333\nWORKBENCH_NETWORK=lan\n")
    bad = tmp_path / "bad.env"
    bad.write_text("VOICEMODE_STREAM_BUFFER_MS=x\n")
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LoadPresetScreen)
        app.screen.query_one("#path", Input).value = str(bad)
        await pilot.click("#load")
        await pilot.pause()
        assert "VOICEMODE_STREAM_BUFFER_MS='x'" in str(app.screen.query_one("#status").render())
        app.screen.query_one("#path", Input).value = str(preset)
        await pilot.pause(0.5)  # not a double click
        await pilot.click("#load")
        await pilot.pause()
        assert not isinstance(app.screen, LoadPresetScreen)
        s = app.session.current_settings()
        assert (s.audio_format, s.buffer_ms, s.network) == ("wav", 333, "lan")
        message = str(app.query_one("#message").render())
        assert message == "loaded preset p: format pcm → wav, network none → lan, wav's initial buffer (ms) 150 → 333"
        assert app.query_one("#buffer_ms", Input).value == "333"
        assert app.session.profiles["pcm"].buffer_ms == 150


async def test_quit_during_a_play_does_not_hang(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text=LONG, speed=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await start_playing(pilot, app)
        await pilot.press("q")
        await asyncio.wait_for(pilot.pause(), 5)
    assert app.return_code in (0, None)


async def test_every_action_is_in_the_command_palette(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Play", "Stop", "Replay", "Compare A vs B", "Export preset", "Load preset", "Help"} <= titles
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"


async def test_b_sets_the_buffer_every_run_needed(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        assert "play first" in str(app.query_one("#message").render())
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        needed = app.session.runs[0].metrics.needed_buffer_ms
        assert needed is not None
        message = str(app.query_one("#message").render())
        assert "would have played every such run" in message
        await pilot.press("b")
        await pilot.pause()
        expected = int(-(-needed // 10) * 10)
        assert app.query_one("#buffer_ms", Input).value == str(expected)
        await wait_for(pilot, lambda: app.session.current_settings().buffer_ms == expected, timeout=5)


async def test_u_tunes_silently_and_fills_the_settings(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, buffer_ms=900)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("u")
        assert app.session.tuning and "tuning" in str(app.query_one("#message").render())
        await pilot.press("p")  # a play would skew the tune: refused while it runs
        assert not app.session.runs and "a tune is running" in str(app.query_one("#message").render())
        key_line, graph = app.query_one(KeyFigures), app.query_one("#graph")
        steps: set[str] = set()

        def step() -> bool:  # where the eye is: the key line and the graph say which trial, play n of N
            parts = key_line.parts()
            if parts[0][1] == "tuning":
                steps.add(parts[1][1])
                assert graph.border_title.startswith("Buffer · tuning (")
            return not app.session.tuning

        await wait_for(pilot, step, timeout=60)
        assert any(s.startswith("probe at 900 ms: play 1/") for s in steps), steps
        assert graph.border_title == "Buffer" and key_line.parts()[0][1] == "idle"
        message = str(app.query_one("#message").render())
        assert message.startswith("tuned pcm on 'none'"), message
        tuned = int(app.query_one("#buffer_ms", Input).value)
        assert tuned < 900 and f"initial buffer {tuned} ms" in message  # a fast local server needs little
        # the panel passes the value to the session as a message, which bubbles up to the app after the
        # tune's own message has been handled: wait for it (it never comes if the value is not applied)
        await wait_for(pilot, lambda: app.session.current_settings().buffer_ms == tuned, timeout=5)
        assert app.query_one("#max_buffer_s", Input).value == "2"  # adaptive is on: the max is left alone
        assert not app.session.runs  # tuning plays are not runs in the history


async def test_the_settings_it_was_opened_with_stay(server: EmbeddedServer, tmp_path: Path) -> None:
    """`workbench --network 4g --playout fixed` opened on none and elastic: each select's first Changed,
    for the value it was composed with, reached the session after the panel had shown the real ones."""
    app = make_app(server, tmp_path, network="4g", playout="fixed", player="voicemode", split="sentence")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        base = app.session.base
        assert (base.network, base.playout, base.player, base.split) == ("4g", "fixed", "voicemode", "sentence")
        assert app.query_one("#network", Select).value == "4g"


async def test_channels_place_the_voice_and_the_play_is_stereo_at_its_gains(server: EmbeddedServer,
                                                                            tmp_path: Path) -> None:
    factory = virtual_factory()
    config = AppConfig(settings=Settings(voices=("test-signal",), pan=0.3), text=SHORT, local_url=server.base_url,
                       start_server=False, sink_factory=factory, save_dir=tmp_path,
                       voicemode_env=tmp_path / "voicemode.env")
    app = create_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        layout = app.query_one("#layout", Select)
        assert layout.value == "0.3"  # a pan from the settings, between the list's places, is shown as it is
        layout.value = "-0.5"
        await pilot.pause()
        assert (app.session.base.channels, app.session.base.pan) == ("stereo", -0.5)
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        played = factory.made[-1].recorder.samples()
        rms = np.sqrt((played.astype(np.float64) ** 2).mean(axis=0))
        left, right = Layout(2, -0.5).gains
        assert played.shape[1] == 2 and abs(rms[0] / rms[1] - left / right) < 0.02 * left / right
        layout.value = "mono"
        await pilot.pause()
        assert (app.session.base.channels, app.session.base.pan) == ("mono", None)


async def test_format_auto_chooses_per_reply_and_says_what_and_why(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text="one two three", network="edge")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.query_one("#audio_format", Select).value = "auto"
        await pilot.pause()
        assert app.session.base.auto_format and app.session.base.audio_format == "pcm"  # pcm's values stay
        assert app.query_one("#buffer_ms", Input).value == "150"
        for n in (1, 2):
            await pilot.press("p")
            await wait_for(pilot, lambda n=n: finished(app, n), timeout=60)  # type: ignore[misc]
        first, second = (r.metrics for r in app.session.runs[:2])
        assert first is not None and second is not None and (first.format, second.format) == ("pcm", "mp3")
        message = str(app.query_one("#message").render())
        assert message.startswith("run 2: --format auto chose mp3: pcm arrived at only"), message
        assert app.query_one(Counters).values["format"] == "mp3 (auto)"
        app.query_one("#audio_format", Select).value = "wav"
        await pilot.pause()
        assert not app.session.base.auto_format and app.session.base.audio_format == "wav"


async def test_u_with_the_voicemode_player_sets_the_format_and_chunk_voicemode_plays_best(
        server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, text="one two three", player="voicemode")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("u")
        await wait_for(pilot, lambda: not app.session.tuning, timeout=120)
        message = str(app.query_one("#message").render())
        assert message.startswith("tuned for voicemode on 'none'"), message
        settings = app.session.current_settings()
        assert f"{settings.audio_format}, chunk {settings.chunk_size} B" in message
        assert app.query_one("#chunk_size", Input).value == str(settings.chunk_size)  # the panel shows it
        assert settings.audio_format != "wav"  # voicemode plays only its first 32 KB


async def test_s_stops_a_tune_and_leaves_the_settings(server: EmbeddedServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, buffer_ms=900)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("u")
        assert app.session.tuning
        await pilot.press("s")
        await pilot.pause()
        assert not app.session.tuning and "tune stopped" in str(app.query_one("#message").render())
        assert app.query_one("#buffer_ms", Input).value == "900"
        await pilot.press("p")  # playing works again at once
        await wait_for(pilot, lambda: finished(app))
        assert app.session.runs[0].metrics is not None and app.session.runs[0].metrics.state == "done"


# -- small terminals (issue 15) ------------------------------------------------------------------------------
def on_screen(app: WorkbenchApp, selector: str) -> bool:
    """The widget is displayed and wholly inside the terminal (not laid out below its bottom)."""
    widget = app.screen.query_one(selector)
    region = widget.region
    return widget.display and region.height > 0 and region.bottom <= app.size.height \
        and region.right <= app.size.width


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 36)])
async def test_a_failed_play_says_why_at_every_size(server: EmbeddedServer, tmp_path: Path,
                                                     size: tuple[int, int]) -> None:
    """At 80x24 and 100x30 the message line and the run history used to be below the screen: a failed
    play showed "failed … reconnects 3" and never the reason."""
    app = make_app(server, tmp_path, base_urls=("http://127.0.0.1:9/v1",))
    async with app.run_test(size=size) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        await pilot.pause()
        assert on_screen(app, "#key-figures") and on_screen(app, "#message")
        assert "failed" in str(app.query_one("#key-figures").render())
        assert "127.0.0.1:9" in str(app.query_one("#message").render())
        await pilot.press("h")  # the history is a key away at any size
        await pilot.pause()
        assert on_screen(app, "#history") and app.focused is app.query_one("#history")
        beside = app.query_one("#settings").display  # from 120 columns they sit beside the graph
        assert beside == (size[0] >= 120)
        if not beside:
            await pilot.press("t")  # below that they are a key away too
            await pilot.pause()
        assert on_screen(app, "#settings") and on_screen(app, "#key-figures") and on_screen(app, "#message")


async def test_dialogs_keep_their_controls_on_screen_at_80x24(server: EmbeddedServer, tmp_path: Path) -> None:
    """At 80x24 the export dialog's Save as field and buttons were off screen, with the focus on the
    invisible Save; a bad file in Load preset said nothing visible at 100x30."""
    bad = tmp_path / "bad.env"
    bad.write_text("VOICEMODE_STREAM_BUFFER_MS=x\n")
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        for selector in ("#path", "#save", "#apply", "#close"):
            assert on_screen(app, selector), selector
        assert app.focused is app.screen.query_one("#save")
        assert app.check_action("play", ()) is False  # the main screen's keys do nothing here, nor are listed
        await pilot.press("enter")  # Save
        await pilot.pause()
        assert on_screen(app, "#status") and "saved" in str(app.screen.query_one("#status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.check_action("play", ()) is True
        await pilot.press("l")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(bad)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        status = app.screen.query_one("#status")
        assert on_screen(app, "#status") and "VOICEMODE_STREAM_BUFFER_MS" in str(status.render())


async def test_w_watches_voicemode_through_the_bridges_files(server: EmbeddedServer, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.bridge.publish import Publisher, ReplyFigures, folder
    from workbench.tui.screens.voicemode import VoicemodeScreen

    monkeypatch.setenv("PATH", str(tmp_path))  # no voicemode here: the screen says so
    monkeypatch.setenv("UV_TOOL_DIR", str(tmp_path / "none"))
    pub = Publisher(folder())
    for underrun in (0.0, 40.0):
        pub.reply(ReplyFigures(format="mp3", played_ms=5200, underruns=1 if underrun else 0, underrun_ms=underrun,
                               buffer_target_ms=150, state="done", first_write_to_sound_ms=61.0))
    pub.live(ReplyFigures(format="pcm", level_ms=120, target_ms=150, elapsed_ms=800, played_ms=600, rate=0.92))
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, VoicemodeScreen))
        screen = app.screen
        assert isinstance(screen, VoicemodeScreen)
        table = screen.query_one("#vm-replies", DataTable)
        assert table.row_count == 2 and table.get_row_at(0)[1] == "mp3" and "40 ms" in table.get_row_at(0)[4]
        assert len(screen.trace) == 1 and screen.trace.last is not None and screen.trace.last.level_ms == 120
        assert "VOICEMODE_STREAM_BUFFER_MS of 190" in str(screen.query_one("#vm-advice").render())
        await pilot.press("a")  # the advice, applied to voicemode.env: the apply dialog (a diff first)
        await wait_for(pilot, lambda: isinstance(app.screen, ApplyScreen))
        assert app.screen.preset.values == {"VOICEMODE_STREAM_BUFFER_MS": "190"}  # type: ignore[attr-defined]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, VoicemodeScreen))
        await wait_for(pilot, lambda: "no voicemode found" in str(screen.query_one("#vm-status").render()))
        pub.live(ReplyFigures(format="pcm", level_ms=90, target_ms=150, elapsed_ms=100, played_ms=50, rate=1.0,
                              at=time.time() + 1))  # the next reply: a trace of its own
        screen.refresh_files()
        assert len(screen.trace) == 1 and screen.trace.last is not None and screen.trace.last.level_ms == 90
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, VoicemodeScreen))


def footer_keys(app: WorkbenchApp) -> list[tuple[str, bool]]:
    """(description, enabled) of each key the footer shows."""
    from textual.widgets._footer import FooterKey

    return [(k.description, not k.disabled) for k in app.screen.query(FooterKey)]


@pytest.mark.parametrize(("size", "last"), [((80, 24), "Help"), ((100, 30), "Quit")])
async def test_the_footer_lists_what_fits_in_order_of_use_and_no_key_cut_in_half(
        server: EmbeddedServer, tmp_path: Path, size: tuple[int, int], last: str) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        keys = [d for d, _ in footer_keys(app)]
        assert keys[:8] == ["Play", "Stop", "Settings", "Compare", "Tune", "Export", "Load", "History"]
        assert keys[-1] == last
        shown = sum(k.region.width for k in app.screen.query("FooterKey"))
        assert shown <= size[0]  # every key whole: none runs off the edge


async def test_g_m_h_show_their_view_at_80x24_even_with_the_settings_open(server: EmbeddedServer,
                                                                          tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for key, view in (("h", "#history"), ("m", "#counters"), ("g", "#graph")):
            await pilot.press("t")  # the settings take the lower area's place ...
            await pilot.pause()
            assert app.query_one(SettingsPanel).display
            app.query_one("#play").focus()
            await pilot.press(key)  # ... and the view's key gives it back
            await pilot.pause()
            assert not app.query_one(SettingsPanel).display and app.query_one(view).display, key


async def test_while_a_field_takes_the_letters_the_footer_does_not_offer_them(server: EmbeddedServer,
                                                                               tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for field in ("#voice", "#text"):
            app.query_one(field).focus()
            await pilot.pause()
            assert [d for d, _ in footer_keys(app)] == ["Help"], field  # F1 is not a letter: it still works
            await pilot.press("escape")  # leaves the field: the keys are back
            await pilot.pause()
            assert "Play" in dict(footer_keys(app))


async def test_the_graph_takes_the_rows_the_history_does_not_need(server: EmbeddedServer, tmp_path: Path) -> None:
    """At 160x45 the graph was 7 rows tall while the history kept 6 empty ones."""
    app = make_app(server, tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        graph, history = app.query_one("#graph"), app.query_one("#history")
        empty_graph = graph.size.height
        assert history.outer_size.height == 3 and empty_graph >= 15
        await pilot.press("p")
        await wait_for(pilot, lambda: finished(app))
        await pilot.pause()
        assert history.outer_size.height == 4 and graph.size.height == empty_graph - 1


async def test_the_counters_cut_short_at_80x24_scroll_and_show_that_they_can(server: EmbeddedServer,
                                                                             tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_message("a message of three lines at 80 columns, as the advice after a play is: " * 3)
        await pilot.press("m")
        await pilot.pause()
        box = app.query_one("#counters")
        assert box.display and box.max_scroll_y > 0 and box.show_vertical_scrollbar  # the last rows are below
        box.scroll_end(animate=False)
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y > 0


async def test_in_compare_g_and_m_give_their_part_the_whole_screen_and_again_bring_both_back() -> None:
    from workbench.tui.scenes import compare, scene_app

    app = scene_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await compare(app)
        await pilot.pause()
        graphs, table = app.screen.query_one("#graphs"), app.screen.query_one("#compare-table")
        assert graphs.display and table.display  # both fit at 100x30
        for key, shown, hidden in (("m", table, graphs), ("g", graphs, table)):
            await pilot.press(key)
            await pilot.pause()
            assert shown.display and not hidden.display, key
        await pilot.press("g")  # the same key again: both
        await pilot.pause()
        assert graphs.display and table.display
