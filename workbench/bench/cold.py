"""`bench cold`: a one-shot `workbench play` from process start to its request on the wire, against
`workbench --help` (the CLI's own start) and a bare interpreter, in the same run.

A listener of its own takes the request: the time is from just before the process is spawned to the
moment the request's body has arrived; it answers 401 so that the play ends at once (not asked again).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from .harness import Progress, Report, machine_description, med
from .suites import BenchOptions

REQUEST_TIMEOUT_S = 30.0
_BODY = b'{"error": {"message": "bench cold: measured, not played"}}'
REFUSAL = (b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n"
           b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


def _until_request(listener: socket.socket) -> float:
    """Accept one connection, read the request whole (headers and JSON body), answer 401; when it was in."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(REQUEST_TIMEOUT_S)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise RuntimeError("the play closed the connection before its request was whole")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        arrived = time.perf_counter()
        json.loads(body)  # a whole request, not a fragment
        conn.sendall(REFUSAL)
    return arrived


def _timed_play(listener: socket.socket, port: int, sink: str) -> float:
    cmd = [sys.executable, "-m", "workbench", "play", "Hello there.", "--no-voicemode-env", "--no-cache",
           "--sink", sink, "--base-url", f"http://127.0.0.1:{port}/v1"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listener.settimeout(REQUEST_TIMEOUT_S)
        arrived = _until_request(listener)
    finally:
        try:
            proc.wait(timeout=REQUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return (arrived - t0) * 1000.0


def _timed_exit(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=REQUEST_TIMEOUT_S)
    return (time.perf_counter() - t0) * 1000.0


def bench_cold(plays: int, sink: str, progress: Progress) -> Report:
    if sink not in ("virtual", "device"):
        sink = "device"  # device-python opens the same device; the start is what is measured
    play: list[float] = []
    helps: list[float] = []
    bare: list[float] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for i in range(plays):  # interleaved, so drift on the machine hits all alike
            progress(f"round {i + 1}/{plays}: play")
            play.append(_timed_play(listener, port, sink))
            progress(f"round {i + 1}/{plays}: --help")
            helps.append(_timed_exit([sys.executable, "-m", "workbench", "--help"]))
            progress(f"round {i + 1}/{plays}: bare interpreter")
            bare.append(_timed_exit([sys.executable, "-c", "pass"]))
    report = Report(f"Cold start: a one-shot play, {plays} rounds, {sink} sink", machine_description())
    report.rows = [
        ("`workbench play`: process start to request on the wire, median (max)",
         f"{med(play):.0f} ms ({max(play):.0f} ms)", "a listener of the bench's own takes the request and answers 401"),
        ("`workbench --help`: process start to exit, median", f"{med(helps):.0f} ms", "the CLI's own start"),
        ("bare interpreter: `python -c pass`, median", f"{med(bare):.0f} ms", "the floor"),
        ("play / --help", f"{med(play) / med(helps):.1f}x", "same run"),
        ("play above --help", f"{med(play) - med(helps):.0f} ms",
         "the engine's imports, settings, the event loop, the HTTP client"),
    ]
    report.data = {"suite": "cold", "plays": plays, "sink": sink, "machine": report.machine,
                   "play_ms": play, "help_ms": helps, "bare_ms": bare}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_cold(o.plays_or(10, 3), o.sink, progress)
