"""The reply cache: entries on disk (whole, checked, bounded), and the player playing from it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from workbench.engine.fetching.cache import SUFFIX, ReplyCache, ReplyKey
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory

KEY = ReplyKey("http://127.0.0.1:1/v1", "Done.", "alloy", "tts-1", None, "pcm", 24_000)


def pcm_like(n: int, seed: int = 0) -> np.ndarray:
    """Audio as 16-bit PCM decodes to: whole steps of 1/32768."""
    return np.random.default_rng(seed).integers(-20_000, 20_000, n).astype(np.float32) / 32768.0


def test_an_entry_comes_back_sample_for_sample(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "replies")
    audio = pcm_like(24_000)
    assert cache.put(KEY, [audio[:1000], audio[1000:]], 24_000) is None
    reply, note = cache.get(KEY)
    assert note is None and reply is not None
    assert reply.rate == 24_000 and reply.channels == 1 and np.array_equal(reply.samples, audio)
    other = ReplyKey(**{**KEY.__dict__, "voice": "nova"})
    assert cache.get(other) == (None, None)  # another voice is another reply
    assert not [p for p in cache.folder.iterdir() if p.name.startswith(".tmp-")]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncated", "other key", "not an entry"])
def test_a_damaged_entry_is_one_line_and_removed(tmp_path: Path, damage: str) -> None:
    cache = ReplyCache(tmp_path / "replies")
    cache.put(KEY, [pcm_like(4800)], 24_000)
    path = cache.path(KEY)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "other key":  # an entry for another text, under this one's name
        other = ReplyKey(**{**KEY.__dict__, "text": "Tests pass."})
        cache.put(other, [pcm_like(4800)], 24_000)
        os.replace(cache.path(other), path)
    else:
        path.write_bytes(b"\x00" * 100)
    reply, note = cache.get(KEY)
    assert reply is None and note is not None and "\n" not in note and "damaged" in note
    assert not path.exists()


def test_past_its_bound_the_entries_played_least_recently_go_first(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "replies", max_mb=0.25)  # room for two entries of 0.1 MB
    keys = [ReplyKey(**{**KEY.__dict__, "text": f"phrase {i}"}) for i in range(3)]
    for i, key in enumerate(keys[:2]):
        cache.put(key, [pcm_like(50_000, i)], 24_000)
        os.utime(cache.path(key), (1000.0 + i, 1000.0 + i))
    assert cache.get(keys[0])[0] is not None  # played again: now the most recent
    cache.put(keys[2], [pcm_like(50_000, 2)], 24_000)
    assert cache.path(keys[0]).exists() and cache.path(keys[2]).exists()
    assert not cache.path(keys[1]).exists()
    assert cache.stats()[1] <= cache.max_bytes


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    note = ReplyCache(blocker / "replies").put(KEY, [pcm_like(100)], 24_000)
    assert note is not None and "\n" not in note and "not saved" in note


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("workbench.engine.fetching.cache.os.replace", full)
    cache = ReplyCache(tmp_path / "replies")
    note = cache.put(KEY, [pcm_like(100)], 24_000)
    assert note is not None and "No space left on device" in note
    assert list(cache.folder.iterdir()) == []


# -- the player --------------------------------------------------------------------------------------
def _player(server: EmbeddedServer, cache: ReplyCache, query: dict[str, str] | None = None,
            **settings: object) -> tuple[StreamPlayer, object]:
    factory = virtual_factory()
    player = StreamPlayer(make_settings(voices=("test-signal",), **settings), base_url=server.base_url,
                          sink_factory=factory, cache=cache, extra_query=query)
    return player, factory


async def test_a_repeated_reply_plays_from_the_cache_the_same_audio_with_no_request(
        server: EmbeddedServer, tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "replies")
    player, factory = _player(server, cache, playout="fixed")  # played as it came, to compare sample for sample
    first = await player.play("one two three")
    second = await player.play("one two three")
    assert (first.cache, first.cache_stored, second.cache, second.cache_stored) == ("miss", True, "hit", False)
    assert first.bytes > 0 and second.bytes == 0 and second.ttfb_ms is None  # no request at all
    assert second.state == "done" and second.underruns == 0
    heard = [s.recorder.samples() for s in factory.made]  # type: ignore[attr-defined]
    heard = [h[np.flatnonzero(h)[0]:np.flatnonzero(h)[-1] + 1] for h in heard]  # from first to last sound
    assert len(heard[1]) == len(heard[0]) > 24_000 and np.allclose(heard[1], heard[0], atol=1e-4)
    off = StreamPlayer(make_settings(voices=("test-signal",), cache=False), base_url=server.base_url,
                       sink_factory=virtual_factory(), cache=cache)
    third = await off.play("one two three")  # WORKBENCH_CACHE=false: the network
    assert third.cache == "off" and third.bytes > 0


async def test_a_reply_that_was_resumed_or_failed_is_not_stored(server: EmbeddedServer, tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "replies")
    player, _ = _player(server, cache, {"drop_after_bytes": "20000", "fault_times": "1", "fault_id": "cache-drop"})
    resumed = await player.play("one two three four five six")
    assert resumed.state == "done" and resumed.reconnects == 1 and not resumed.cache_stored
    again = await player.play("one two three four five six")  # so not from the cache: from the network
    assert again.cache == "miss" and again.bytes > 0 and again.cache_stored
    failing, _ = _player(server, cache, {"status": "500"}, max_retries=0)
    failed = await failing.play("seven eight")
    assert failed.state == "failed" and not failed.cache_stored and cache.stats()[0] == 1


async def test_a_damaged_entry_plays_from_the_network_with_one_line(server: EmbeddedServer, tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "replies")
    player, _ = _player(server, cache)
    await player.play("nine ten")
    (entry,) = [p for p in cache.folder.iterdir() if p.suffix == SUFFIX]
    entry.write_bytes(entry.read_bytes()[:200])
    m = await player.play("nine ten")
    assert m.cache == "miss" and m.bytes > 0 and m.state == "done" and m.cache_stored
    assert any("damaged" in w for w in m.warnings)
