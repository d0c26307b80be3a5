"""Snapshot tests: the workbench's scenes (workbench/tui/scenes.py) rendered at a fixed size.

Each scene pushes fixed data in through the app's own handlers: no server, no audio, no timers, no
clocks. A failure writes snapshot_report.html; after a deliberate change, update with
`pytest tests/tui/test_snapshots.py --snapshot-update` and look at the new SVGs.
"""

from __future__ import annotations

import pytest

from workbench.tui.scenes import SCENES, SIZE, scene_app


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TEXTUAL_THEME", "NO_COLOR", "FORCE_COLOR", "TEXTUAL_ANIMATIONS", "COLUMNS", "LINES"):
        monkeypatch.delenv(var, raising=False)


def _check(snap_compare, name: str, size: tuple[int, int] = SIZE, keys: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    scene = next(s for s in SCENES if s.name == name)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.pause()
        await scene.setup(pilot.app)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()

    assert snap_compare(scene_app(), terminal_size=size, run_before=run_before)


def test_idle(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The app as it opens: the sample text, Play focused, an empty graph, idle counters, the settings
    panel with voicemode's defaults (pcm, 150 ms, 4096 bytes, 2 s) and the endpoint on the right of
    the buttons."""
    _check(snap_compare, "idle")


def test_mid_play(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """Run 2 of 2 half-way: the graph rising from 0 with the first-sound line near 0.3 s, the state
    "playing", live played/received seconds, and run 1 done in the history."""
    _check(snap_compare, "mid-play")


def test_underrun(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """A 4g run with two stalls: two red underrun lines on the graph where the buffer hits 0, and
    "2 (... ms)" underruns in bold red in the counters and in the history."""
    _check(snap_compare, "underrun")


def test_compare(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """A vs B (pcm vs wav): two graphs on the same time and level scales, and the metrics table with
    B - A and the better side marked in green (A for TTFA, TTFB and first byte)."""
    _check(snap_compare, "compare")


def test_export_dialog(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The export dialog over the main screen: the preset as plain KEY=value lines with a comment
    header, the file name to save to, and Save / Apply to voicemode… / Close."""
    _check(snap_compare, "export")


def test_error(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """A run that could not reach its endpoint: state "failed" in red, the error on the message line
    ("run 1: cannot reach ..."), and the app still usable."""
    _check(snap_compare, "error")


# -- small terminals (issue 15): what a user in an 80x24 or 100x30 tmux pane sees ---------------------------
def test_mid_play_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 mid-play: two-line text box, borderless buttons, the key-figures line (playing, TTFA,
    underruns, buffer now and its target), the graph filling the rest, the recommendation on the message
    line, and a footer of the keys that fit in the order of use (p Play first, f1 Help last), none cut."""
    _check(snap_compare, "mid-play", (80, 24))


def test_counters_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 after m: the counters in two columns in place of the graph, with a scrollbar for the rows
    below."""
    _check(snap_compare, "underrun", (80, 24), ("m",))


def test_history_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 after h: the run history in place of the graph, run 2 still playing with its TTFA shown."""
    _check(snap_compare, "mid-play", (80, 24), ("h",))


def test_settings_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 after t: the settings take the lower area at full width, the key-figures line and the
    message line stay; the Format select has the focus."""
    _check(snap_compare, "idle", (80, 24), ("t",))


def test_error_at_100x30(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """100x30, a failed play: "failed" in red on the key-figures line and the reason on the message line,
    both on screen; the endpoint label names the endpoint in the error."""
    _check(snap_compare, "error", (100, 30))


def test_export_dialog_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 export dialog: a short preset box, the notes, the Save as field and all three buttons on
    screen with Save focused, and the dialog's own footer (esc Close, f1 Help)."""
    _check(snap_compare, "export", (80, 24))


def test_compare_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24 compare: one-row controls with Run and Save visible, the status line, the two graphs, and the
    table's results (first sound, TTFA, underruns, underrun time, stretched) on screen."""
    _check(snap_compare, "compare", (80, 24))


def test_format_change_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24: 50 ms applied to pcm, then mp3 chosen: the message line says mp3 plays with its own values
    (initial buffer 150 ms ...) and pcm keeps its 50 ms, with o to carry them over; the key line shows the
    initial buffer the next play starts from (150 ms)."""
    _check(snap_compare, "format-change", (80, 24))


def test_loaded_preset_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80x24: the flaky preset loaded: the message line lists what it changed (its initial buffer, max
    buffer and network)."""
    _check(snap_compare, "loaded-preset", (80, 24))


@pytest.mark.parametrize("scene", ["idle", "mid-play", "compare"])
def test_at_100x30(snap_compare, scene: str) -> None:  # type: ignore[no-untyped-def]
    """100x30: the idle screen with the settings beside nothing cut; mid-play with the graph, counters
    and history; compare with both graphs and the table's results on screen."""
    _check(snap_compare, scene, (100, 30))
