"""The session without its screen: it finishes its own plays and tells one observer channel, with no
Textual loaded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

import workbench.server.runner as runner
from workbench.server.runner import EmbeddedServer
from workbench.tui import events
from workbench.tui.session import AppConfig, Session, SessionError
from workbench.tui.state import TRACE_POINTS, RunRecord

from ..conftest import make_settings, virtual_factory


def test_the_session_loads_no_textual() -> None:
    code = ("import sys, workbench.tui.session\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


async def finished(record: RunRecord, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if record.metrics is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the play did not finish")


def session_on(base_url: str, seen: list[events.Event]) -> Session:
    config = AppConfig(settings=make_settings(voices=("test-signal",)), local_url=base_url, start_server=False,
                       sink_factory=virtual_factory(speed=8.0))
    return Session(config, seen.append)


async def test_a_play_is_finished_by_the_session_and_told_once_through_its_observers(server: EmbeddedServer) -> None:
    seen: list[events.Event] = []
    session = session_on(server.base_url, seen)
    late: list[events.Event] = []
    session.subscribe(late.append)
    try:
        record = session.start_play("Hello there, this is a short reply.")
        await finished(record)
        assert record.metrics is not None and record.metrics.state == "done", record.metrics
        assert session.current is None  # finished by the session itself: the next play may start
        assert isinstance(seen[0], events.RunStarted) and seen[0].record is record
        progress = [e for e in seen if isinstance(e, events.PlayProgress)]
        assert progress and all(e.record is record for e in progress)
        assert [e for e in seen if isinstance(e, events.PlayFinished)] == [events.PlayFinished(record)]
        assert isinstance(seen[-1], events.PlayFinished)
        assert late == seen  # every observer is told the same
        assert list(record.trace.t_ms) == [e.snapshot.t_ms for e in progress][-TRACE_POINTS:]  # all in its trace
        session.unsubscribe(late.append)
        second = session.start_play("And again.")
        await finished(second)
        assert isinstance(seen[-1], events.PlayFinished) and seen[-1].record is second
        assert not any(isinstance(e, events.RunStarted) and e.record is second for e in late)
    finally:
        await session.close()


async def test_a_play_that_cannot_reach_its_endpoint_ends_failed_with_the_reason() -> None:
    seen: list[events.Event] = []
    session = session_on("http://127.0.0.1:9", seen)  # nothing listens on the discard port
    try:
        record = session.start_play("Hello.")
        await finished(record)
        assert record.metrics is not None and record.metrics.state == "failed" and record.metrics.error
        assert isinstance(seen[-1], events.PlayFinished) and seen[-1].record is record
        assert session.current is None
    finally:
        await session.close()


async def test_a_second_play_while_one_runs_is_refused_in_one_line(server: EmbeddedServer) -> None:
    session = session_on(server.base_url, [])
    try:
        record = session.start_play("Hello there, this is a short reply.")
        try:
            session.start_play("Another.")
        except SessionError as exc:
            assert "a play is running" in str(exc)
        else:
            raise AssertionError("a second play started")
        await finished(record)
    finally:
        await session.close()


async def test_an_embedded_server_that_starts_after_the_session_closed_is_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started, stopped = threading.Event(), threading.Event()
    release = threading.Event()

    class SlowServer:
        base_url = "http://127.0.0.1:1/v1"

        def start(self) -> SlowServer:
            started.set()
            release.wait(10)
            return self

        def stop(self) -> None:
            stopped.set()

    monkeypatch.setattr(runner, "EmbeddedServer", SlowServer)
    seen: list[events.Event] = []
    session = Session(AppConfig(settings=make_settings()), seen.append)
    session.start_server()
    assert await asyncio.to_thread(started.wait, 10)
    await session.close()  # the user quit while the server was starting
    release.set()
    assert await asyncio.to_thread(stopped.wait, 10)
    assert session.server is None and not any(isinstance(e, events.ServerReady) for e in seen)


async def test_what_the_session_learns_of_its_embedded_server_stays_out_of_the_endpoint_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new port at every start: an entry per session would pile up in ~/.config/.../endpoints.json."""
    from pathlib import Path

    session = Session(AppConfig(settings=make_settings(voices=("test-signal",), auto_format=True),
                                sink_factory=virtual_factory(), save_dir=tmp_path), lambda event: None)
    session.start_server()
    await asyncio.wait_for(session._server_ready.wait(), timeout=30)
    try:
        record = session.start_play("one two", session.current_settings())
        await asyncio.wait_for(_finished(record), timeout=30)
    finally:
        await session.close()
    assert record.metrics is not None and record.metrics.state == "done"
    memory = Path.home() / ".config" / "stream-workbench" / "endpoints.json"
    assert not memory.exists() or "127.0.0.1" not in memory.read_text()


async def _finished(record: RunRecord) -> None:
    while record.metrics is None:
        await asyncio.sleep(0.05)


def test_exports_and_results_go_to_the_data_folder_not_where_the_app_was_started(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from workbench.cli import build_parser

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert AppConfig(settings=make_settings()).save_dir == Path.home() / ".local" / "share" / "stream-workbench"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert AppConfig(settings=make_settings()).save_dir == tmp_path / "data" / "stream-workbench"
    assert build_parser()[0].parse_args(["tui", "--out", "results"]).out == Path("results")
