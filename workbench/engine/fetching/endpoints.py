"""What the engine learned about endpoints: which ones send a reply only once it is whole.

`WORKBENCH_SPLIT=auto` splits a reply into sentences only for an endpoint that does not stream. That is
seen on a play: the reply came with a Content-Length, its first byte came late, and the body then
arrived in one burst (its reads waited, all told, less than half as long as the first byte took).
It is remembered per endpoint URL, in memory and (for the CLI and the TUI) in
`~/.config/stream-workbench/endpoints.json`, so the next reply starts a sentence at a time. A reply
that comes without a Content-Length (chunked, as a streaming server sends it) marks the endpoint as
streaming again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .formatchoice import FormatChooser

if TYPE_CHECKING:
    from ..figures.metrics import PlayMetrics
    from .source import SpeechSource

LATE_S = 0.25  # a first byte sooner than this is not worth splitting for
BURST_SHARE = 0.5  # "one burst": the body took at most this share of the wait for its first byte


def looks_buffered(headers: dict[str, str], asked: float | None, first_byte: float | None,
                   body_wait_s: float) -> bool | None:
    """True when a response shows a server that sends only whole replies, False when it shows one that
    streams, None when it shows neither (a quick reply with a Content-Length says nothing either way).

    `body_wait_s` is the time the body's reads waited for data after the first byte: the body's own
    pace, without the time the engine was not reading (a full buffer holds the download back)."""
    if first_byte is None or asked is None:
        return None
    if "content-length" not in headers:
        return False  # chunked: the server sends while it synthesizes
    wait = first_byte - asked
    if wait >= LATE_S and body_wait_s <= BURST_SHARE * wait:
        return True
    return None


class EndpointMemory:
    """Per endpoint URL: True when it sends whole replies only. File-backed when given a path; a file that
    cannot be read is ignored and one that cannot be written leaves the memory in this process only."""

    MAX_ENTRIES = 64

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.transient: set[str] = set()  # remembered in this process only (the embedded server: a new port each start)
        self._data: dict[str, dict[str, Any]] | None = None
        self._choosers: dict[tuple[str, str], FormatChooser] = {}

    def in_this_process_only(self, url: str) -> None:
        """What is learned about `url` is not written to the file (the embedded server: each start has a new
        port, and an entry per start would be kept for nothing)."""
        self.transient.add(url.rstrip("/"))

    @classmethod
    def default(cls, home: Path | None = None) -> EndpointMemory:
        return cls((home or Path.home()) / ".config" / "stream-workbench" / "endpoints.json")

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            self._data = {}
            if self.path is not None:
                with contextlib.suppress(OSError, ValueError):
                    raw = json.loads(self.path.read_text(encoding="utf-8"))
                    if isinstance(raw, dict):
                        self._data = {k: v for k, v in raw.items()
                                      if isinstance(k, str) and isinstance(v, dict)
                                      and (isinstance(v.get("buffered"), bool) or isinstance(v.get("formats"), dict))}
        return self._data

    def buffered(self, url: str) -> bool | None:
        entry = self._load().get(url.rstrip("/"))
        value = entry.get("buffered") if entry is not None else None
        return value if isinstance(value, bool) else None

    def remember(self, url: str, buffered: bool) -> str | None:
        """Note what a play showed; returns a problem writing the file, if there was one."""
        return self._update(url, buffered=buffered)

    def chooser(self, url: str, network: str) -> FormatChooser:
        """WORKBENCH_AUTO_FORMAT: this endpoint's format chooser on this (simulated) network, as it was left."""
        key = (url.rstrip("/"), network)
        if key not in self._choosers:
            entry = self._load().get(key[0])
            state = entry.get("formats", {}).get(network) if entry is not None else None
            self._choosers[key] = FormatChooser.from_dict(state if isinstance(state, dict) else None)
        return self._choosers[key]

    def keep_chooser(self, url: str, network: str) -> str | None:
        """Keep what the chooser learned (the file, when there is one); a problem writing it, if any."""
        entry = self._load().get(url.rstrip("/"), {})
        formats = entry.get("formats")
        formats = formats if isinstance(formats, dict) else {}
        return self._update(url, formats={**formats, network: self.chooser(url, network).to_dict()})

    def _update(self, url: str, **values: Any) -> str | None:
        data = self._load()
        key = url.rstrip("/")
        entry = data.pop(key, {})
        data[key] = {**entry, **values, "seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        while len(data) > self.MAX_ENTRIES:
            data.pop(next(iter(data)))
        if self.path is None or key in self.transient:
            return None
        data = {k: v for k, v in data.items() if k not in self.transient}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".endpoints-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            return f"could not save what was learned about {key} to {self.path}: {exc.strerror or exc}"
        return None


def learn_streaming(memory: EndpointMemory, base_url: str, source: SpeechSource, metrics: PlayMetrics) -> str | None:
    """Note in `memory` whether the endpoint streams, from how a reply's (first) response came; a line for the
    user when it turns out not to (also in the metrics' warnings)."""
    seen = looks_buffered(source.response_headers, source.request_started, source.first_byte_at,
                          source.body_wait_s)
    metrics.endpoint_buffered = seen
    if seen is None or (seen is False and metrics.fragments > 1 and "content-length" in source.response_headers):
        return None
    before = memory.buffered(base_url)
    problem = memory.remember(base_url, seen)
    note = None
    if seen and not before:
        assert source.first_byte_at is not None and source.request_started is not None
        wait = source.first_byte_at - source.request_started
        note = (f"the endpoint sent the whole reply at once, {wait:.1f} s after it was asked: it does not "
                "stream, so the next replies are asked for a sentence at a time (WORKBENCH_SPLIT=auto)")
        metrics.warnings.append(note)
    if problem:
        metrics.warnings.append(problem)
    return note
