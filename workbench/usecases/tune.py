"""`workbench tune`: the smallest initial buffer (and max buffer) that plays K repeats without an underrun.

1. **Probe**: K plays at the settings given. Every streamed play reports `needed_buffer_ms`, the
   smallest initial buffer that would have played it clean (replayed from when each piece arrived);
   the candidate is the largest of them, rounded up to 10 ms.
2. **Verify**: K more plays at the candidate as a fixed buffer (voicemode's streaming design; 9.0 has
   none), on fresh draws of the network's dice (another seed). Any underrun raises the candidate (to
   what those plays needed, and at least by a quarter) and verifies again, up to `MAX_ROUNDS` times.
3. **Max buffer** (fixed buffering only; the adaptive target is capped by it, so it is left alone):
   the smallest of `MAX_BUFFER_STEPS` that also plays K repeats clean, on the same network dice the
   initial buffer was verified on (so an underrun is the smaller maximum's doing). A smaller maximum
   holds less audio in memory; too small and the buffer cannot grow enough to ride out a stall later on.

The plays go to a virtual sink (tuning should not sound fifteen replies); the TTFA it reports is the
verified plays' median, the cost of the buffer found.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.figures.metrics import PlayMetrics
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from ..engine.settings import PlayerKind, Settings
from ..engine.vmplayer import VOICEMODE_VERSION, VoicemodePlayer
from .presets import Preset, preset_from_settings

MAX_ROUNDS = 4
MAX_BUFFER_STEPS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
SEED_STEP = 1000  # each verification round meets other network dice


class TuneFailed(Exception):
    """No setting played clean within the rounds allowed; `str()` says what was tried."""


@dataclass
class TuneResult:
    settings: Settings  # the tuned settings (buffer_ms, max_buffer_s set)
    buffer_ms: int
    max_buffer_s: float
    ttfa_ms: float  # median of the verified plays (first sample)
    plays: int
    first_sound_ms: float | None = None  # ... and of their first sound (-50 dBFS)
    steps: list[str] = field(default_factory=list)  # what was tried, for the report
    player: str = "workbench"  # voicemode: the format and chunk size voicemode 9.0 plays best, as it plays
    arrival_rtf: float | None = None  # how fast the endpoint sent audio in the verified plays (x real time)

    @property
    def pace_note(self) -> str:
        """What the result depends on: how fast this endpoint made audio (a slower TTS needs more)."""
        if self.arrival_rtf is None:
            return ""
        return (f"measured with the endpoint sending audio at {self.arrival_rtf:.1f}x real time; "
                "a slower TTS needs a larger buffer")

    def preset(self, name: str) -> Preset:
        s = self.settings
        if self.player == "voicemode":
            return preset_from_settings(s, name, [
                f"Stream Workbench preset: {name}",
                f"Tuned by 'workbench tune --player voicemode' for voicemode {VOICEMODE_VERSION} as it plays today, "
                f"on network '{s.network}': the format and chunk size with no gap and the earliest first sound "
                f"({self.first_sound_ms or self.ttfa_ms:.0f} ms). Its buffer keys are this engine's.",
                *self.steps,
                "Plain KEY=value lines: voicemode reads this file as it is."])
        header = [f"Stream Workbench preset: {name}",
                  f"Tuned by 'workbench tune': {s.audio_format} on network '{s.network}', the smallest initial buffer "
                  f"that played every verification repeat without an underrun; TTFA {self.ttfa_ms:.0f} ms"
                  + (f", first sound {self.first_sound_ms:.0f} ms." if self.first_sound_ms is not None else "."),
                  *self.steps,
                  "Plain KEY=value lines: voicemode reads this file as it is."]
        return preset_from_settings(s, name, header)


async def _repeat(player: StreamPlayer | VoicemodePlayer, repeats: int, text: str,
                  progress: Callable[[str], object], what: str) -> list[PlayMetrics]:
    """`repeats` plays of `text`; a failed one ends the tuning (its figures would mean nothing)."""
    out: list[PlayMetrics] = []
    for i in range(repeats):
        progress(f"{what}: play {i + 1}/{repeats}")
        m = await player.play(text)
        if m.error:
            raise TuneFailed(f"{what}: {m.error}")
        out.append(m)
    return out


def _round_up(ms: float, step: int = 10) -> int:
    return int(math.ceil(max(ms, 0.0) / step) * step)


async def tune(settings: Settings, base_url: str, repeats: int, text: str,
               progress: Callable[[str], object] = lambda _: None,
               extra_query: dict[str, Any] | None = None) -> TuneResult:
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if settings.player is PlayerKind.VOICEMODE:
        return await tune_voicemode(settings, base_url, repeats, text, progress, extra_query)
    if not settings.streaming_enabled:
        raise ValueError("tuning needs streaming on (VOICEMODE_STREAMING_ENABLED=true): a buffered play has no "
                         "initial buffer to tune")
    cap_ms = settings.max_buffer_s * 1000.0
    plays = 0
    steps: list[str] = []

    async def series(s: Settings, what: str) -> list[PlayMetrics]:
        nonlocal plays
        async with StreamPlayer(s, base_url=base_url, extra_query=extra_query,
                                sink_factory=sink_factory("virtual")) as player:
            out = await _repeat(player, repeats, text, progress, what)
        plays += len(out)
        return out

    def needed(ms: list[PlayMetrics]) -> float:
        return max((m.needed_buffer_ms or 0.0) for m in ms)

    # fixed playout throughout: what is tuned is an initial buffer waited for in full before the first
    # sound (VOICEMODE_STREAM_BUFFER_MS as voicemode's design means it; voicemode 9.0 reads it but does not
    # use it), not the level elastic playout grows to
    settings = settings.replace(playout="fixed")
    probe = settings.replace(adaptive=False)
    found = await series(probe, f"probe at {probe.buffer_ms} ms")
    candidate = min(_round_up(needed(found)), int(cap_ms))
    steps.append(f"Probe: {repeats} plays at {probe.buffer_ms} ms needed at most {needed(found):.0f} ms.")
    verified: list[PlayMetrics] = []
    seed = settings.network_seed
    for round_no in range(1, MAX_ROUNDS + 1):
        seed = settings.network_seed + SEED_STEP * round_no
        # verified as a fixed buffer, which is what the preset gives voicemode: with the adaptive target
        # on, a later repeat would start from what an earlier one learned and flatter the value
        trial = settings.replace(buffer_ms=candidate, network_seed=seed, adaptive=False)
        verified = await series(trial, f"verify {candidate} ms (round {round_no})")
        bad = sum(1 for m in verified if m.underruns)
        steps.append(f"Verify {candidate} ms: {bad} of {repeats} plays underran.")
        if not bad:
            break
        if candidate >= cap_ms:
            raise TuneFailed(f"even the max buffer ({cap_ms:.0f} ms) underran in {bad} of {repeats} plays; "
                             "raise VOICEMODE_STREAM_MAX_BUFFER or try a lighter format")
        candidate = min(max(_round_up(needed(verified)), _round_up(candidate * 1.25), candidate + 10), int(cap_ms))
    else:
        raise TuneFailed(f"no buffer up to {candidate} ms played {repeats} repeats clean in {MAX_ROUNDS} rounds")
    best = settings.replace(buffer_ms=candidate)
    if settings.adaptive:
        steps.append(f"Max buffer left at {settings.max_buffer_s:g} s: adaptive buffering is on and grows up to it "
                     "(WORKBENCH_ADAPTIVE=false tunes it too).")
    else:
        for max_s in (m for m in MAX_BUFFER_STEPS if candidate / 1000.0 <= m < settings.max_buffer_s):
            # the dice the initial buffer was verified on: an underrun here is the smaller max's doing
            trial = best.replace(max_buffer_s=max_s, network_seed=seed)
            runs = await series(trial, f"max buffer {max_s:g} s")
            bad = sum(1 for m in runs if m.underruns)
            steps.append(f"Max buffer {max_s:g} s: {bad} of {repeats} plays underran.")
            if not bad:
                best = trial.replace(network_seed=settings.network_seed)
                break
    ttfa = statistics.median([m.ttfa_ms for m in verified if m.ttfa_ms is not None] or [0.0])
    sounds = [m.first_sound_ms for m in verified if m.first_sound_ms is not None]
    paces = [m.arrival_rtf for m in verified if m.arrival_rtf is not None]
    pace = statistics.median(paces) if paces else None
    if pace is not None:
        steps.append(f"The endpoint sent audio at {pace:.1f}x real time (median of the verified plays).")
    return TuneResult(settings=best, buffer_ms=best.buffer_ms, max_buffer_s=best.max_buffer_s, ttfa_ms=ttfa,
                      plays=plays, steps=steps, first_sound_ms=statistics.median(sounds) if sounds else None,
                      arrival_rtf=pace)


# what voicemode 9.0 lets a user choose that changes its playback: the format, and the chunk size (which
# sets how soon PCM's first write and MP3's early decode happen); Opus and WAV do not depend on it
VOICEMODE_CANDIDATES = (("pcm", 1024), ("pcm", 4096), ("pcm", 16384), ("mp3", 1024), ("mp3", 4096),
                        ("mp3", 16384), ("opus", 4096), ("wav", 4096))
WHOLE = 0.9  # less than this share of the longest play: part of the reply was lost (codecs pad a frame or two)


async def tune_voicemode(settings: Settings, base_url: str, repeats: int, text: str,
                         progress: Callable[[str], object] = lambda _: None,
                         extra_query: dict[str, Any] | None = None) -> TuneResult:
    """`tune --player voicemode`: K plays of each format and chunk size, played as voicemode 9.0 plays them
    (`VoicemodePlayer`, on a virtual sink at real time, on the settings' network). The winner plays the
    whole reply in every repeat with no gap and has the earliest median first sound; with no gap-free
    one, the least gap time wins. The buffer keys are left as they were: voicemode 9.0 does not use them."""
    runs: dict[tuple[str, int], list[PlayMetrics]] = {}
    plays = 0
    for fmt, chunk in VOICEMODE_CANDIDATES:
        s = settings.replace(audio_format=fmt, chunk_size=chunk)
        async with VoicemodePlayer(s, base_url=base_url, extra_query=extra_query,
                                   sink_factory=sink_factory("virtual")) as player:
            runs[(fmt, chunk)] = await _repeat(player, repeats, text, progress, f"voicemode {fmt}, chunk {chunk}")
        plays += repeats

    def speech_ms(m: PlayMetrics) -> float:  # what was played of the reply, without the silence voicemode adds
        return max(m.played_ms - m.padding_ms, 0.0)

    whole = max(speech_ms(m) for ms in runs.values() for m in ms) or 1.0
    steps: list[str] = []
    scored = []
    for (fmt, chunk), ms in runs.items():
        share = min(speech_ms(m) for m in ms) / whole
        gaps = statistics.median([m.underrun_ms for m in ms])
        sound = statistics.median([m.first_sound_ms or m.ttfa_ms or math.inf for m in ms])
        steps.append(f"{fmt}, chunk {chunk}: first sound {sound:.0f} ms, gaps {gaps:.0f} ms, "
                     f"played {100 * share:.0f} % of the reply.")
        if share >= WHOLE:  # ties (within 10 ms) go to voicemode's default chunk size
            scored.append((gaps > 0, gaps, round(sound, -1), abs(math.log2(chunk / 4096)), sound, fmt, chunk))
    if not scored:
        raise TuneFailed("no format played the whole reply as voicemode plays it")
    *_, sound, fmt, chunk = min(scored)
    best = settings.replace(audio_format=fmt, chunk_size=chunk)
    ttfa = statistics.median([m.ttfa_ms or 0.0 for m in runs[(fmt, chunk)]])
    return TuneResult(settings=best, buffer_ms=best.buffer_ms, max_buffer_s=best.max_buffer_s, ttfa_ms=ttfa,
                      plays=plays, first_sound_ms=sound, steps=steps, player="voicemode")
