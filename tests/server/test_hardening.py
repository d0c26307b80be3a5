"""The server's own surface: a request cannot freeze it, keys guard every route, knobs only when allowed."""

from __future__ import annotations

import io
import logging
import threading
import time

import httpx2
import pytest

from workbench import cli
from workbench.engine.text.errors import exception_chain
from workbench.server.app import Knobs, _QuietInjectedDrops
from workbench.server.runner import EmbeddedServer

BODY = {"model": "tts-1", "input": "one two", "voice": "test-signal", "response_format": "pcm"}
FAST = Knobs(ttfb_ms=5, pace=0.02, flush_ms=5)


def test_a_control_character_in_a_knob_is_refused_and_the_server_keeps_answering() -> None:
    with EmbeddedServer(knobs=FAST) as server, httpx2.Client(timeout=5) as client:
        bad = client.post(server.base_url + "/audio/speech", json=BODY, params={"content_type": "a\nb"})
        assert bad.status_code == 400
        assert "content_type" in bad.json()["error"]["message"]
        assert client.get(server.base_url.removesuffix("/v1") + "/health").status_code == 200
        assert client.post(server.base_url + "/audio/speech", json=BODY).status_code == 200


def test_a_looping_exception_chain_is_walked_once() -> None:
    a, b = ValueError("a"), KeyError("b")
    a.__context__, b.__context__ = b, a
    group = ExceptionGroup("g", [a])
    a.__cause__ = group
    assert {id(e) for e in exception_chain(a)} == {id(a), id(b), id(group)}
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None, (type(a), a, None))
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(_QuietInjectedDrops().filter(record)), daemon=True)
    worker.start()
    worker.join(timeout=2.0)
    assert result == [True], "the log filter never finished on a looping chain"


@pytest.fixture(scope="module")
def keyed():  # type: ignore[no-untyped-def]
    with EmbeddedServer(knobs=FAST, api_key="s3cret", test_knobs=False) as server:
        yield server


@pytest.mark.parametrize("path", ["/v1/models", "/v1/audio/voices", "/health"])
def test_with_a_key_every_route_wants_it(keyed: EmbeddedServer, path: str) -> None:
    root = keyed.base_url.removesuffix("/v1")
    with httpx2.Client(timeout=5) as client:
        assert client.get(root + path).status_code == 401
        assert client.get(root + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(root + path, headers={"Authorization": "bearer s3cret"}).status_code == 200


def test_without_test_knobs_a_request_cannot_set_them(keyed: EmbeddedServer) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    with httpx2.Client(timeout=5) as client:
        refused = client.post(keyed.base_url + "/audio/speech", json=BODY, headers=auth,
                              params={"drop_after_bytes": "10"})
        assert refused.status_code == 403
        assert "--test-knobs" in refused.json()["error"]["message"]
        header = client.post(keyed.base_url + "/audio/speech", json=BODY,
                             headers={**auth, "X-Workbench-Knobs": "stall_ms=9000"})
        assert header.status_code == 403
        plain = client.post(keyed.base_url + "/audio/speech", json=BODY, headers=auth)
        assert plain.status_code == 200 and len(plain.content) > 1000


def test_a_body_that_is_not_sent_as_json_is_refused(keyed: EmbeddedServer) -> None:
    """A web page can send text/plain or a form across sites without asking; it cannot send JSON."""
    import json

    auth = {"Authorization": "Bearer s3cret"}
    with httpx2.Client(timeout=5) as client:
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            r = client.post(keyed.base_url + "/audio/speech", content=json.dumps(BODY),
                            headers={**auth, "Content-Type": ctype})
            assert r.status_code == 415, ctype


def _serve(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str] | None = None
           ) -> tuple[int, str, dict[str, object]]:
    seen: dict[str, object] = {}

    def fake_serve(host: str, port: int, knobs: Knobs, api_key: str | None = None, test_knobs: bool = False) -> None:
        seen.update(host=host, api_key=api_key, test_knobs=test_knobs)

    monkeypatch.setattr("workbench.server.runner.serve_forever", fake_serve)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    err = io.StringIO()
    code = cli.main(["serve", *argv], stdout=io.StringIO(), stderr=err)
    return code, err.getvalue(), seen


def test_serve_warns_on_an_open_host_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    code, err, seen = _serve(monkeypatch, ["--host", "0.0.0.0"])
    assert code == 0 and "no API key" in err and seen["api_key"] is None
    code, err, _ = _serve(monkeypatch, ["--host", "127.0.0.1"])
    assert "no API key" not in err
    code, err, seen = _serve(monkeypatch, ["--host", "0.0.0.0"], {"WORKBENCH_SERVER_API_KEY": "k1"})
    assert "no API key" not in err and seen["api_key"] == "k1"
    assert seen["test_knobs"] is False


def test_serve_takes_the_key_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyfile = tmp_path / "key"
    keyfile.write_text("from-file\n")
    code, _, seen = _serve(monkeypatch, ["--api-key-file", str(keyfile), "--test-knobs"])
    assert code == 0 and seen["api_key"] == "from-file" and seen["test_knobs"] is True
    code, err, _ = _serve(monkeypatch, ["--api-key-file", str(tmp_path / "missing")])
    assert code == 2 and "cannot read --api-key-file" in err
    assert "Traceback" not in err
    started = time.perf_counter()
    code, err, _ = _serve(monkeypatch, ["--api-key", "has space"])
    assert code == 2 and time.perf_counter() - started < 5


# -- issue 32: a slow client, precise messages, control characters -------------------------------------
@pytest.fixture(scope="module")
def quick_deadline():  # type: ignore[no-untyped-def]
    with EmbeddedServer(request_deadline_s=1.0) as server:
        yield server


@pytest.mark.parametrize("sent", [b"", b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n",
                                  b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 100\r\n\r\n{\"input\":"])
def test_a_slow_client_is_answered_408_and_cut_off(quick_deadline: EmbeddedServer, sent: bytes) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", quick_deadline.port), timeout=10) as sock:
        sock.sendall(sent)  # and then nothing more (a slowloris sends a byte now and then: the same here)
        t = time.perf_counter()
        answer = b""
        while piece := sock.recv(4096):
            answer += piece
        waited = time.perf_counter() - t
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive in time" in answer
    assert 0.9 <= waited < 4.0


def test_a_request_that_took_its_time_but_arrived_is_answered(quick_deadline: EmbeddedServer) -> None:
    # and the deadline is the request's, not the response's: a reply streamed for longer than it is fine
    r = httpx2.post(quick_deadline.base_url + "/audio/speech", params={"pace": "1.0", "ttfb_ms": "0"},
                    json={"model": "tts-1", "input": "one two three four five six seven eight", "voice": "test-signal",
                          "response_format": "pcm"}, timeout=20)
    assert r.status_code == 200 and len(r.content) > 48_000 * 2  # more than 2 s of audio, at real time


@pytest.mark.parametrize(("field", "value", "said"), [
    ("input", 5, "Invalid type for 'input': expected a string, but got an integer instead."),
    ("input", ["a"], "Invalid type for 'input': expected a string, but got an array instead."),
    ("input", None, "Missing required parameter: 'input'."),
    ("input", "\x00\x1b[2J", "'input' is empty: there is nothing to say."),
    ("speed", "fast", "Invalid type for 'speed': expected a number, but got a string instead."),
    ("voice", 3, "Invalid type for 'voice': expected a string, but got an integer instead."),
    ("response_format", {"a": 1},
     "Invalid type for 'response_format': expected a string, but got an object instead."),
])
def test_each_bad_field_is_named_precisely(quick_deadline: EmbeddedServer, field: str, value: object,
                                           said: str) -> None:
    body = {"model": "tts-1", "input": "hi", "voice": "test-signal", field: value}
    r = httpx2.post(quick_deadline.base_url + "/audio/speech", json=body, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["message"] == said and r.json()["error"]["param"] == field
