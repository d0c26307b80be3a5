"""WORKBENCH_AUTO_FORMAT: the chooser as a pure state machine, and the player choosing on simulated links."""

from __future__ import annotations

from workbench.engine.fetching.formatchoice import PROBE_FIRST, FormatChooser
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory


def test_pcm_until_the_link_is_seen_too_slow_for_it_then_mp3() -> None:
    c = FormatChooser()
    first = c.choose()
    assert first.format == "pcm" and "nothing measured" in first.reason
    c.learn(first, 4.9)  # a fast link: pcm stays
    assert c.choose().format == "pcm"
    c.learn(c.choose(), 0.52, kbps=200)  # edge: pcm at half real time
    second = c.choose()
    assert second.format == "mp3" and "0.52x" in second.reason and "200 kbit/s" in second.reason
    c.learn(second, 5.0)  # mp3 at the server's pace: it helped, kept
    assert c.choose().format == "mp3"


def test_a_slow_server_is_not_a_slow_link_pcm_comes_back_and_stays() -> None:
    c = FormatChooser()
    c.learn(c.choose(), 1.05)  # pcm from a server at 1.05x real time, on any link
    mp3 = c.choose()
    assert mp3.format == "mp3"
    c.learn(mp3, 1.06)  # mp3 came no faster: the server sets the pace
    back = c.choose()
    assert back.format == "pcm" and "server sets the pace" in back.reason
    c.learn(back, 1.05)  # slow pcm again: no reason to leave it now
    assert c.choose().format == "pcm"
    c.learn(c.choose(), 3.0)  # seen with room: the server-bound mark goes
    c.learn(c.choose(), 0.5)
    assert c.choose().format == "mp3"


def test_pcm_is_probed_again_with_backoff() -> None:
    c = FormatChooser()
    c.learn(c.choose(), 0.5)
    for _ in range(PROBE_FIRST):
        choice = c.choose()
        assert choice.format == "mp3" and not choice.probe
        c.learn(choice, 5.0)
    probe = c.choose()
    assert probe.format == "pcm" and probe.probe and "probing" in probe.reason
    c.learn(probe, 0.5)  # still too slow: mp3, and twice as long before the next probe
    waits = 0
    while not c.choose().probe:
        c.learn(c.choose(), 5.0)
        waits += 1
    assert waits == 2 * PROBE_FIRST
    c.learn(c.choose(), 2.0)  # the link recovered: pcm, and the backoff is reset
    assert c.choose().format == "pcm" and c.probe_after == PROBE_FIRST


def test_a_buffer_that_filled_means_the_link_carried_pcm() -> None:
    c = FormatChooser()
    c.learn(c.choose(), 0.9, backpressured=True)  # the figure is low because playback held the download back
    assert c.choose().format == "pcm"


async def test_on_edge_auto_leaves_pcm_after_one_reply_and_plays_mp3_without_an_underrun(
        server: EmbeddedServer) -> None:
    player = StreamPlayer(make_settings(voices=("test-signal",), network="edge", auto_format=True),
                          base_url=server.base_url, sink_factory=virtual_factory(speed=1.0))
    first = await player.play("one two three four")
    second = await player.play("five six seven eight")
    assert (first.format, second.format) == ("pcm", "mp3")
    assert first.auto_format is not None and "nothing measured" in first.auto_format
    assert second.auto_format is not None and "pcm arrived at only" in second.auto_format
    assert second.underruns == 0 and second.state == "done"
    plain = StreamPlayer(make_settings(voices=("test-signal",), network="edge"), base_url=server.base_url,
                         sink_factory=virtual_factory(speed=1.0))
    pcm = await plain.play("five six seven eight")  # what pcm does on this link, for comparison
    assert pcm.format == "pcm" and pcm.stretched_pct > 20 and pcm.auto_format is None


async def test_a_buffered_play_on_edge_leaves_pcm_too(server: EmbeddedServer) -> None:
    """With streaming off, a reply longer than the maximum buffer fills it whatever the link: that is not
    room on the link (it kept a buffered play on pcm, 2.6 s to first audio, reply after reply)."""
    player = StreamPlayer(make_settings(voices=("test-signal",), network="edge", auto_format=True,
                                        streaming_enabled=False, max_buffer_s=0.5),
                          base_url=server.base_url, sink_factory=virtual_factory(speed=4.0))
    first, second = await player.play("one two three"), await player.play("one two three")
    assert (first.format, second.format) == ("pcm", "mp3")
    assert second.ttfa_ms is not None and first.ttfa_ms is not None and second.ttfa_ms < first.ttfa_ms / 2


async def test_on_lan_auto_keeps_pcm(server: EmbeddedServer) -> None:
    player = StreamPlayer(make_settings(voices=("test-signal",), network="lan", auto_format=True),
                          base_url=server.base_url, sink_factory=virtual_factory())
    formats = [(await player.play(text)).format for text in ("one two", "three four", "five six")]
    assert formats == ["pcm", "pcm", "pcm"]


def test_what_was_learned_is_kept_per_endpoint_and_network_and_a_bad_entry_starts_afresh(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from workbench.engine.fetching.endpoints import EndpointMemory

    path = tmp_path / "endpoints.json"
    memory = EndpointMemory(path)
    chooser = memory.chooser("http://x/v1", "edge")
    chooser.learn(chooser.choose(), 0.5)
    assert memory.keep_chooser("http://x/v1", "edge") is None
    memory.remember("http://x/v1", False)  # the split's memory and the format's share the entry
    again = EndpointMemory(path)  # another command
    assert again.chooser("http://x/v1/", "edge").choose().format == "mp3"
    assert again.chooser("http://x/v1", "lan").choose().format == "pcm"  # another link: nothing known
    assert again.buffered("http://x/v1") is False
    path.write_text('{"http://x/v1": {"formats": {"edge": {"current": "flac"}}}}')
    assert EndpointMemory(path).chooser("http://x/v1", "edge").choose().format == "pcm"
