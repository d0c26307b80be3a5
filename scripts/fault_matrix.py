#!/usr/bin/env python3
"""The fault matrix: every fault and bad input we know of, against the real command line.

A fault-injecting HTTP proxy of its own (it does not use the embedded server's fault knobs) stands
between `workbench play` and a clean embedded server speaking the test signal (a 440 Hz tone as long
as the text). Each case runs the CLI as a user would (`--record` keeps what was played), and the
recording is compared with what the server sent: how much of the tone was heard, the silent gaps
inside it, and the largest sample-to-sample jump (a click; the tone itself never jumps more than
0.06). Bad inputs run the CLI and note the exit code and its one line.

    .venv/bin/python scripts/fault_matrix.py [--out docs/fault-matrix.md]

A hostile server of its own then plays what no well-behaved server does: base64 one
character short, bare-CR event streams, audio under the wrong label, empty replies and fragments,
audio around `speech.audio.done` and error events, a different rendition on the retry, a stream sent
a byte at a time; MP3 drops against a server at real time; a long split reply's memory; and the
server's own surface against a slow client and wrongly typed fields.

It takes about six minutes; the tables it prints are docs/reliability.md's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.server.app import Knobs  # noqa: E402
from workbench.server.runner import EmbeddedServer  # noqa: E402

TEXT = "one two three four five six seven eight nine ten eleven twelve"  # 4.1 s of tone
HTML = ("<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body><h1>Service "
        "Unavailable</h1>" + "<p>padding</p>" * 1200 + "</body></html>").encode()


# -- the proxy -----------------------------------------------------------------------------------------
@dataclass
class Fault:
    drop_at: int = -1  # close the connection after this many body bytes (first request only)
    corrupt_at: int = -1  # flip 64 bytes from here (every request)
    truncate_at: int = -1  # end the body cleanly here (every request)
    stall_at: int = -1  # pause here ...
    stall_s: float = 0.0  # ... this long (first request only)
    status: int = 0  # answer this instead (first request only, or always with sticky)
    sticky: bool = False
    html: bool = False  # answer 200 with an error page
    silent: bool = False  # send the headers, then nothing
    requests: int = 0


class LoopbackServer:
    """HTTP/1.1 on loopback, on an event loop of its own: /<case>/v1/... is served by `_serve` as the
    case says."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def url(self, case: str) -> str:
        return f"http://127.0.0.1:{self.port}/{case}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        self.loop.run_until_complete(start())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
        """(method, target, headers in lower case, body) of one request, with a length or in chunks."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += (await reader.readexactly(size + 2))[:-2]
                if size == 0:
                    break
        return method, target, headers, body


class FaultProxy(LoopbackServer):
    """/<case>/v1/... is forwarded to the upstream's /v1/... with that case's fault."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.cases: dict[str, Fault] = {}
        super().__init__()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, headers, body = await self.read_request(reader)
        case, _, rest = target.lstrip("/").partition("/")
        fault = self.cases.setdefault(case, Fault())
        fault.requests += 1
        first = fault.requests == 1
        if fault.status and (first or fault.sticky):
            extra = "Retry-After: 1\r\n" if fault.status == 429 else ""
            payload = json.dumps({"error": {"message": f"proxy fault {fault.status}", "type": "fault"}}).encode()
            writer.write(f"HTTP/1.1 {fault.status} Fault\r\nContent-Type: application/json\r\n{extra}"
                         f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
            await writer.drain()
            return
        if fault.html:
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(HTML)}\r\n"
                         "Connection: close\r\n\r\n".encode() + HTML)
            await writer.drain()
            return
        kept = ("content-type", "authorization", "x-workbench-resume-byte")
        forward = {k: v for k, v in headers.items() if k in kept}
        async with httpx2.AsyncClient(timeout=60) as client, client.stream(
                method, f"{self.upstream}/{rest}", content=body, headers=forward) as upstream:
            out = [f"HTTP/1.1 {upstream.status_code} OK",
                   f"Content-Type: {upstream.headers.get('content-type', 'application/octet-stream')}",
                   "Transfer-Encoding: chunked", "Connection: close"]
            if "x-workbench-resume-byte" in upstream.headers:
                out.append(f"X-Workbench-Resume-Byte: {upstream.headers['x-workbench-resume-byte']}")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode())
            await writer.drain()
            if fault.silent:
                await asyncio.sleep(60)
                return
            sent = 0
            async for chunk in upstream.aiter_raw():
                data = bytearray(chunk)
                if fault.corrupt_at >= 0:
                    for i in range(max(fault.corrupt_at - sent, 0), min(fault.corrupt_at + 64 - sent, len(data))):
                        data[i] ^= 0x5A
                if first and fault.stall_at >= 0 and sent <= fault.stall_at < sent + len(data):
                    cut = fault.stall_at - sent
                    await self._chunk(writer, data[:cut])
                    await asyncio.sleep(fault.stall_s)
                    sent += cut
                    data = data[cut:]
                limit = len(data)
                if fault.truncate_at >= 0:
                    limit = min(limit, fault.truncate_at - sent)
                if first and fault.drop_at >= 0:
                    limit = min(limit, fault.drop_at - sent)
                await self._chunk(writer, data[: max(limit, 0)])
                sent += max(limit, 0)
                if first and 0 <= fault.drop_at <= sent:
                    writer.transport.abort()  # no terminating chunk: a broken connection
                    return
                if 0 <= fault.truncate_at <= sent:
                    break
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes | bytearray) -> None:
        if data:
            writer.write(f"{len(data):x}\r\n".encode() + bytes(data) + b"\r\n")
            await writer.drain()


# -- the hostile server ---------------------------------------------------------------------------------
RATE = 24_000
TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE * 2) / RATE)).astype(np.float32)  # 2 s, what it says


def _pcm(x: np.ndarray) -> bytes:
    return np.round(x * 32767).astype("<i2").tobytes()


def _delta(b64: str) -> bytes:
    return f"data: {json.dumps({'type': 'speech.audio.delta', 'audio': b64})}\n\n".encode()


def _b64_deltas(audio: bytes, size: int = 960) -> list[str]:
    import base64

    return [base64.b64encode(audio[i : i + size]).decode() for i in range(0, len(audio), size)]


_DONE = b'data: {"type": "speech.audio.done", "usage": {"total_tokens": 1}}\n\n'


@dataclass
class Answer:
    body: list[bytes]
    content_type: str = "audio/pcm"
    gap_s: float = 0.0  # between pieces
    drop: bool = False
    length: bool = False  # a Content-Length instead of chunks


class HostileServer(LoopbackServer):
    """/<case>/v1/audio/speech answers as that case's function says, given the request's number (from 0)
    and its JSON body; every request's body is kept in `seen`."""

    def __init__(self) -> None:
        self.cases: dict[str, Any] = {}
        self.seen: dict[str, list[dict[str, Any]]] = {}
        super().__init__()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, target, _, raw = await self.read_request(reader)
        case = target.lstrip("/").partition("/")[0]
        seen = self.seen.setdefault(case, [])
        seen.append(json.loads(raw or b"{}"))
        answer: Answer = self.cases[case](len(seen) - 1, seen[-1])
        whole = b"".join(answer.body)
        framing = f"Content-Length: {len(whole)}" if answer.length else "Transfer-Encoding: chunked"
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {answer.content_type}\r\n{framing}\r\n"
                     "Connection: close\r\n\r\n".encode())
        if answer.length:
            writer.write(whole)
        else:
            for piece in answer.body:
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
                if answer.gap_s:
                    await asyncio.sleep(answer.gap_s)
            if answer.drop:
                writer.transport.abort()
                return
            writer.write(b"0\r\n\r\n")
        await writer.drain()


def hostile_cases(server: HostileServer, tmp: Path) -> list[str]:
    """Each hostile case through the CLI: (name, exit, what happened, heard / sent, gaps, largest jump)."""
    tone = _pcm(TONE)
    half = _pcm(TONE[: RATE // 2])
    deltas = _b64_deltas(half)
    short = [*deltas]
    short[5] = short[5][:-1]
    other = _pcm((0.3 * np.sin(2 * np.pi * 660 * np.arange(RATE * 2) / RATE)).astype(np.float32))
    three = "The first one is here. The second one follows it closely. The third one ends the reply."
    sixty = " ".join(f"Sentence number {n} says very little at all." for n in range(60))
    error = b'data: {"type": "speech.audio.error", "error": {"message": "the voice model crashed"}}\n\n'
    one_byte = _pcm(TONE[: int(RATE * 0.3)])
    cases: list[tuple[str, str, Any, list[str], str, float]] = [
        # (name, format, answer(i, body), extra CLI args, text, seconds the server says)
        ("SSE: one delta's base64 one character short", "pcm",
         lambda i, b: Answer([*(_delta(d) for d in short), _DONE], "text/event-stream"), ["--stream-format", "sse"],
         TEXT, 0.5),
        ("SSE: bare-CR line endings", "pcm",
         lambda i, b: Answer([_delta(d).replace(b"\n", b"\r") for d in deltas] + [_DONE.replace(b"\n", b"\r")],
                             "text/event-stream"), ["--stream-format", "sse"], TEXT, 0.5),
        ("raw PCM labelled text/event-stream", "pcm",
         lambda i, b: Answer([half[j : j + 4096] for j in range(0, len(half), 4096)], "text/event-stream"), [],
         TEXT, 0.5),
        ("200 with Content-Length: 0", "pcm", lambda i, b: Answer([], length=True), [], TEXT, 0.0),
        ("SSE: audio after speech.audio.done", "pcm",
         lambda i, b: Answer([*(_delta(d) for d in deltas), _DONE, *(_delta(d) for d in _b64_deltas(other[:9600]))],
                             "text/event-stream"), ["--stream-format", "sse"], TEXT, 0.5),
        ("SSE: an error event after 0.5 s of audio", "pcm",
         lambda i, b: Answer([b"".join(_delta(d) for d in deltas) + error], "text/event-stream"),
         ["--stream-format", "sse"], TEXT, 0.5),
        ("split: the second of three sentences comes back empty", "pcm",
         lambda i, b: Answer([], length=True) if "second" in b["input"] else Answer([half]),
         ["--split", "sentence"], three, 1.0),
        ("split: 60 sentences, every reply empty", "pcm", lambda i, b: Answer([], length=True),
         ["--split", "sentence"], sixty, 0.0),
        ("a different rendition on the retry (drop at 1 s, no resume)", "pcm",
         lambda i, b: Answer([tone[: len(tone) // 2]], drop=True) if i == 0 else Answer([other]), [], TEXT, 2.0),
        ("the same audio on the retry (drop at 1 s, no resume)", "pcm",
         lambda i, b: Answer([tone[: len(tone) // 2]], drop=True) if i == 0 else Answer([tone]), [], TEXT, 2.0),
        ("0.3 s of audio sent a byte at a time", "pcm",
         lambda i, b: Answer([one_byte[j : j + 1] for j in range(len(one_byte))]), [], TEXT, 0.3),
        ("control characters and escape codes in the text", "pcm", lambda i, b: Answer([half]), [],
         "\x1b[1;31mTests\x1b[0m pass.\x00\x07 Done.", 0.5),
    ]
    rows = []
    for n, (name, fmt, answer, extra, text, sent_s) in enumerate(cases):
        key = f"h{n}"
        server.cases[key] = answer
        t = time.perf_counter()
        o = play(server.url(key), fmt, tmp, *extra, text=text)
        took = time.perf_counter() - t
        asked = server.seen.get(key, [])
        what = f"; {len(asked)} request{'s' if len(asked) != 1 else ''} in {took:.1f} s" if len(asked) > 2 else ""
        if "control" in name and asked:
            what = f"; the server got {asked[0].get('input')!r}"
        rows.append(_put_note(row(name, fmt, o, sent_s), what))
        print(rows[-1], flush=True)
    return rows


def _put_note(line: str, note: str) -> str:
    """`note` at the end of the 'what happened' cell of a matrix row."""
    if not note:
        return line
    cells = line.split(" | ")
    cells[3] += note
    return " | ".join(cells)


def realtime_mp3_drops(tmp: Path) -> list[str]:
    """MP3 drops against a server at real time (the buffer holds little more than its target)."""
    rows = []
    with EmbeddedServer(knobs=Knobs(ttfb_ms=150, pace=1.0, flush_ms=40), test_knobs=False) as upstream:
        proxy = FaultProxy(upstream.base_url)
        size = len(httpx2.post(upstream.base_url + "/audio/speech", json={"model": "tts-1", "input": TEXT,
                               "voice": "test-signal", "response_format": "mp3"}, timeout=60).content)
        sent = play(proxy.url("rt-clean"), "mp3", tmp).heard_s
        for frac in (0.1, 0.5, 0.9):
            key = f"rt{frac}"
            proxy.cases[key] = Fault(drop_at=int(size * frac))
            rows.append(row(f"MP3 dropped at {frac:.0%}, server at real time", "mp3", play(proxy.url(key), "mp3", tmp),
                            sent))
            print(rows[-1], flush=True)
    return rows


def split_memory(upstream: EmbeddedServer, tmp: Path) -> list[str]:
    """Resident memory of `workbench play --split sentence` over a long reply: at 5 s and at 35 s."""
    words = "the quick brown fox jumps over a lazy dog while seven engineers measure every buffer level".split()
    text = " ".join(" ".join(words[(i + j) % len(words)] for j in range(12)).capitalize() + "." for i in range(2700))
    env = {**os.environ, "WORKBENCH_SINK": "virtual", "WORKBENCH_CACHE": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("VOICEMODE_")}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "play", "-", "--no-voicemode-env", "--quiet",
                             "--split", "sentence", "--base-url", upstream.base_url, "--voice", "test-signal"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()

    def rss() -> float:
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    time.sleep(5)
    first = rss()
    time.sleep(30)
    last = rss()
    proc.terminate()
    proc.wait(10)
    return [f"| a {len(text)}-character reply, --split sentence, virtual sink | {first:.1f} MB | {last:.1f} MB | "
            f"{last - first:+.1f} MB |"]


# -- running the CLI and reading what it played ---------------------------------------------------------
@dataclass
class Outcome:
    code: int
    state: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    heard_s: float = 0.0
    gaps_ms: float = 0.0
    max_step: float = 0.0
    stderr: str = ""
    retries: int = 0
    underruns: int = 0
    underrun_ms: float = 0.0
    skipped: int = 0  # corrupt frames or pages skipped


def run_cli(args: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    # the reply cache off: each case must ask its server (a clean reply would otherwise answer the next case)
    full_env = {**os.environ, "WORKBENCH_SINK": "virtual", "WORKBENCH_CACHE": "false", **(env or {})}
    for key in list(full_env):
        if key.startswith("VOICEMODE_") and key not in (env or {}):
            del full_env[key]
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, env=full_env,
                          input=stdin, timeout=timeout, **({"stdin": subprocess.DEVNULL} if stdin is None else {}))


def analyse(path: Path) -> tuple[float, float, float]:
    """(tone heard in s, silent gaps inside it in ms, largest sample-to-sample jump)."""
    if not path.exists():
        return 0.0, 0.0, 0.0
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    if not len(x):
        return 0.0, 0.0, 0.0
    win = int(rate * 0.002)
    n = len(x) // win
    rms = np.sqrt(np.mean(x[: n * win].reshape(n, win) ** 2, axis=1)) if n else np.zeros(0)
    loud = rms > 10 ** (-40 / 20)
    if not loud.any():
        return 0.0, 0.0, float(np.abs(np.diff(x)).max()) if len(x) > 1 else 0.0
    first, last = np.flatnonzero(loud)[[0, -1]]
    gaps = (~loud[first : last + 1]).sum() * 2.0
    return loud.sum() * 0.002, float(gaps), float(np.abs(np.diff(x)).max())


def play(base_url: str, fmt: str, tmp: Path, *extra: str, env: dict[str, str] | None = None,
         text: str = TEXT) -> Outcome:
    record = tmp / f"rec-{time.monotonic_ns()}.wav"
    piped = "\x00" in text  # an argument cannot hold a NUL: standard input can
    result = run_cli(["play", "-" if piped else text, "--no-voicemode-env", "--base-url", base_url, "--format", fmt,
                      "--voice", "test-signal", "--json", "--record", str(record), *extra], env=env,
                     stdin=text.encode() if piped else None)
    out = Outcome(code=result.returncode, stderr=result.stderr.decode("utf-8", "replace"))
    try:
        m = json.loads(result.stdout)
        out.state, out.error, out.notes, out.retries = m["state"], m.get("error") or "", m["warnings"], m["retries"]
        out.underruns, out.underrun_ms, out.skipped = m["underruns"], m["underrun_ms"], m["decoder_errors"]
    except (json.JSONDecodeError, KeyError):
        out.error = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    out.heard_s, out.gaps_ms, out.max_step = analyse(record)
    return out


# -- the matrix -----------------------------------------------------------------------------------------
def short(text: str, n: int = 90) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= n else text[: n - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    rows: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    with EmbeddedServer(knobs=Knobs(ttfb_ms=60, pace=0.5, flush_ms=20), test_knobs=False) as upstream:
        proxy = FaultProxy(upstream.base_url)
        sizes: dict[str, int] = {}
        sent: dict[str, float] = {}
        for fmt in ("pcm", "wav", "mp3", "opus", "aac", "flac"):
            body = httpx2.post(upstream.base_url + "/audio/speech", json={"model": "tts-1", "input": TEXT,
                               "voice": "test-signal", "response_format": fmt}, timeout=60).content
            sizes[fmt] = len(body)
            clean = play(proxy.url(f"clean-{fmt}"), fmt, tmp)
            sent[fmt] = clean.heard_s
            rows.append(row("none (reference)", fmt, clean, sent[fmt]))

        def case(name: str, fmt: str, fault: Fault, *extra: str, env: dict[str, str] | None = None) -> None:
            key = f"c{len(proxy.cases)}"
            proxy.cases[key] = fault
            rows.append(row(name, fmt, play(proxy.url(key), fmt, tmp, *extra, env=env), sent[fmt]))
            print(rows[-1], flush=True)

        for fmt in ("pcm", "mp3", "opus"):
            for frac in (0.1, 0.45, 0.8):
                case(f"connection dropped at {frac:.0%} of the body", fmt, Fault(drop_at=int(sizes[fmt] * frac)))
        for status in (500, 401, 429, 404):
            case(f"status {status} on the first request", "pcm", Fault(status=status))
        for fmt in sizes:
            case("64 bytes corrupted at 40%", fmt, Fault(corrupt_at=int(sizes[fmt] * 0.4)))
        for fmt in sizes:
            case("body ends cleanly at 50%", fmt, Fault(truncate_at=int(sizes[fmt] * 0.5)))
        for fmt in ("pcm", "mp3", "opus"):
            case("200 with an HTML error page", fmt, Fault(html=True))
        case("a 1.5 s stall at 30%", "pcm", Fault(stall_at=int(sizes["pcm"] * 0.3), stall_s=1.5))
        case("headers, then nothing", "pcm", Fault(silent=True), env={"WORKBENCH_STALL_TIMEOUT_S": "3"})
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        rows.append(row("unreachable (a closed port)", "pcm", play(f"http://127.0.0.1:{closed}/v1", "pcm", tmp), 0))
        rows.append(row("no such output device", "pcm",
                        play(proxy.url("clean-pcm"), "pcm", tmp, "--sink", "device",
                             env={"WORKBENCH_OUTPUT_DEVICE": "no-such-device"}), 0))
        bad = bad_inputs(upstream, tmp)
        hostile = hostile_cases(HostileServer(), tmp)
        memory = split_memory(upstream, tmp)
    hostile += realtime_mp3_drops(tmp)
    header = ["| fault | format | exit | what happened | heard / whole reply | gaps | largest jump |",
              "|---|---|---|---|---|---|---|"]
    text = "\n".join([*header, *rows]) + "\n\n" + "A hostile server (the script's own):\n\n" + "\n".join(
        [*header, *hostile]) + "\n\n" + "\n".join(
        ["| long split reply | RSS at 5 s | RSS at 35 s | growth |", "|---|---|---|---|", *memory]) + "\n\n" + \
        "\n".join(bad) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


def row(name: str, fmt: str, o: Outcome, sent_s: float) -> str:
    what = o.state or "no metrics"
    if o.error:
        what += ": " + short(re.sub(r"http://127\.0\.0\.1:\d+/\w+/v1", "the proxy", o.error))
    if o.retries:
        what += f" ({o.retries} retr{'y' if o.retries == 1 else 'ies'})"
    if o.underruns:
        what += f"; {o.underruns} underrun{'s' if o.underruns > 1 else ''} ({o.underrun_ms:.0f} ms)"
    if o.skipped:
        s = "s" if o.skipped > 1 else ""
        what += f"; {o.skipped} corrupt frame{s} or page{s} skipped"
    resumed = [n for n in o.notes if "resumed at byte" in n or "did not continue" in n]
    if resumed:
        what += "; " + short(resumed[0], 40)
    heard = f"{o.heard_s:.2f} / {sent_s:.2f} s" if sent_s else f"{o.heard_s:.2f} s"
    trace = " TRACEBACK" if "Traceback" in o.stderr else ""
    return (f"| {name} | {fmt} | {o.code}{trace} | {what} | {heard} | {o.gaps_ms:.0f} ms | "
            f"{o.max_step:.2f} |")


def bad_inputs(server: EmbeddedServer, tmp: Path) -> list[str]:
    """Each bad input: the exit code and the one line the user sees."""
    preset_with_key = tmp / "with-key.env"
    preset_with_key.write_text("VOICEMODE_STREAM_BUFFER_MS=100\nOPENAI_API_KEY=sk-should-not-be-here\n")
    existing = tmp / "exists.env"
    existing.write_text("x\n")
    readonly = tmp / "ro" / "voicemode.env"
    readonly.parent.mkdir()
    readonly.write_text("VOICEMODE_STREAM_BUFFER_MS=400\n")
    cases: list[tuple[str, list[str], bytes | None]] = [
        ("--buffer-ms abc", ["play", "--buffer-ms", "abc", "hi"], None),
        ("--chunk-size 3", ["play", "--chunk-size", "3", "hi"], None),
        ("--speed fast", ["play", "--speed", "fast", "hi"], None),
        ("--format ogg", ["play", "--format", "ogg", "hi"], None),
        ("text not UTF-8 (argument)", ["play", b"caf\xe9".decode("utf-8", "surrogateescape")], None),
        ("text not UTF-8 (stdin)", ["play", "-"], b"caf\xe9"),
        ("empty text", ["play", "  "], None),
        ("--preset carrying OPENAI_API_KEY", ["play", "--preset", str(preset_with_key), "hi"], None),
        ("preset export over a file", ["preset", "export", "-o", str(existing)], None),
        ("preset validate, four problems", ["preset", "validate", str(_four_problems(tmp))], None),
        ("--base-url ftp://x", ["play", "--base-url", "ftp://x", "hi"], None),
        ("serve --api-key-file missing", ["serve", "--api-key-file", str(tmp / "nope")], None),
    ]
    lines = ["| bad input | exit | what the user reads |", "|---|---|---|"]
    for name, argv, stdin in cases:
        r = run_cli(argv, stdin=stdin, timeout=60)
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        out = r.stdout.decode("utf-8", "replace").strip().splitlines()
        said = [line for line in err + out if "error" in line or "invalid" in line] or err or out
        trace = " TRACEBACK" if "Traceback" in r.stderr.decode("utf-8", "replace") else ""
        extra = f" (+{len(said) - 1} more lines)" if len(said) > 1 else ""
        lines.append(f"| {name} | {r.returncode}{trace} | {short(said[0] if said else '', 110)}{extra} |")
    return lines + [""] + server_surface()


def _four_problems(tmp: Path) -> Path:
    path = tmp / "four.env"
    path.write_text("export VOICEMODE_X=1\nVOICEMODE_STREAM_BUFFER_MS=-5\nVOICEMODE_STREAM_CHUNK_SIZE=3\n"
                    "VOICEMODE_TYPO=1\n")
    return path


def server_surface() -> list[str]:
    """The server's own surface: a frozen-server request, keys, knobs, bodies that are not JSON."""
    lines = ["| request to the server | answer |", "|---|---|"]
    body = {"model": "tts-1", "input": "hi", "voice": "test-signal", "response_format": "pcm"}
    with EmbeddedServer(knobs=Knobs(ttfb_ms=5, pace=0.05), api_key="k", test_knobs=True) as knobbed, \
            EmbeddedServer(knobs=Knobs(ttfb_ms=5, pace=0.05), api_key="k", test_knobs=False) as srv, \
            httpx2.Client(timeout=5) as c:
        root, auth = srv.base_url.removesuffix("/v1"), {"Authorization": "Bearer k"}
        checks = [
            ("(--test-knobs) knob content_type=a\\nb: froze the server before", lambda: c.post(
                knobbed.base_url + "/audio/speech", json=body, headers=auth, params={"content_type": "a\nb"})),
            ("(--test-knobs) then GET /health", lambda: c.get(knobbed.base_url.removesuffix("/v1") + "/health",
                                                             headers=auth)),
            ("GET /health without the key", lambda: c.get(root + "/health")),
            ("GET /v1/models with 'bearer k' (lowercase)", lambda: c.get(srv.base_url + "/models",
                                                                         headers={"Authorization": "bearer k"})),
            ("a JSON body sent as text/plain", lambda: c.post(srv.base_url + "/audio/speech", content=json.dumps(body),
                                                             headers={**auth, "Content-Type": "text/plain"})),
            ("?drop_after_bytes=10 without --test-knobs", lambda: c.post(
                srv.base_url + "/audio/speech", json=body, headers=auth, params={"drop_after_bytes": "10"})),
        ]
        checks += [
            ('{"input": 5}', lambda: c.post(srv.base_url + "/audio/speech", json={**body, "input": 5}, headers=auth)),
            ('{"speed": "fast"}', lambda: c.post(srv.base_url + "/audio/speech", json={**body, "speed": "fast"},
                                                 headers=auth)),
        ]
        for name, call in checks:
            try:
                r = call()
                lines.append(f"| {name} | {r.status_code} {short(r.text if r.status_code != 200 else 'ok', 80)} |")
            except httpx2.HTTPError as exc:
                lines.append(f"| {name} | {type(exc).__name__} |")
        for name, sent in (("a slow client: half a request line, then nothing", b"POST /v1/audio/speech HTTP/1.1\r\n"),
                           ("a slow client: headers, then a body that never comes",
                            b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 99\r\n\r\n{")):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as sock:
                t = time.perf_counter()
                sock.sendall(sent)
                answer = b""
                try:
                    while piece := sock.recv(4096):
                        answer += piece
                except TimeoutError:
                    answer = b"(still open after 60 s)"
                first = answer.split(b"\r\n", 1)[0].decode("latin-1")
                lines.append(f"| {name} | {first}, closed after {time.perf_counter() - t:.1f} s |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
