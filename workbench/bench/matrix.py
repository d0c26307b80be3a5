"""`workbench bench matrix`: formats x network profiles x settings x repeats, with both baselines.

Every cell (a format on a network) plays the same text with each setting under test and with two
baselines measured in the same run, on the same server and the same simulated network:

- **buffered**: download the whole reply, then play it (what voicemode does for most formats);
- **naive**: play each piece as soon as it arrives, no initial buffer and no adaptation (what
  voicemode does for PCM).

Plays are interleaved (repeat 1 of every setting, then repeat 2 ...), so each setting meets the same
stretch of the network's dice. The report gives medians and p95 per cell, each setting's TTFA as a
ratio to buffered (how much sooner it starts) and naive's underrun time as a ratio to the setting's
(how much smoother it plays), a picture of TTFA against underrun time, and a headline: the TTFA of a
~30 second reply, buffered against streamed.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from ..engine.figures.metrics import PlayMetrics, median, percentile, spread
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from ..engine.settings import PLAYERS, PlayerKind, Settings, parse_overrides
from ..engine.vmplayer import VoicemodePlayer
from ..usecases.presets import load_preset
from .harness import Progress, Report, ServerProcess, bench_options, machine_description
from .suites import BenchError, BenchOptions, parse_list

MATRIX_TEXT = ("Streaming speech has to start quickly and keep going when the network stalls, "
               "so the workbench plays the same words every way it knows.")
LONG_TEXT = " ".join([
    "A long reply is where waiting for the whole download hurts most.",
    "A coding assistant that explains a change, walks through a stack trace or reads back a plan",
    "can talk for half a minute, and if the player waits for the last byte before the first sound,",
    "the person at the keyboard hears nothing for several seconds and wonders whether it heard them.",
    "Streaming starts the sound after the first few hundred milliseconds instead,",
    "and keeps a small buffer ahead of the speaker so that a slow moment on the network",
    "is covered without a gap. That difference is what this figure measures.",
])
QUICK_TEXT = "A quick check of every setting."

BASELINES = ("buffered", "naive")
VOICEMODE_COLUMN = "voicemode 9.0"  # the `voicemode` setting's column: what voicemode's users hear today
# server scenarios that stand in the matrix beside the network profiles (they need the embedded server)
SCENARIOS: dict[str, dict[str, str]] = {
    # a local neural TTS on a laptop CPU: 1.1x real time, each burst up to 150 ms late, a 400 ms slow
    # moment 3 s into the audio
    "near-real-time": {"pace": "0.9", "lateness_ms": "150", "pause_at_s": "3", "pause_ms": "400"},
}
# what a preset may change in a matrix column (its format, network, endpoint are the matrix's to set)
PRESET_KEYS = ("buffer_ms", "max_buffer_s", "chunk_size", "streaming_enabled", "adaptive", "block_size",
               "max_retries")


@dataclass(frozen=True)
class Setting:
    """One column of the matrix: a label and the settings it changes."""

    label: str
    overrides: dict[str, Any]


def parse_settings(spec: str) -> list[Setting]:
    """`elastic,fixed:150,300,adaptive,preset:lan`: elastic playout (the default, its target learned),
    fixed buffers in ms (`fixed:150` or `150`), a fixed buffer with the adaptive target, presets."""
    out: list[Setting] = []
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        if raw == "elastic":
            out.append(Setting("elastic", {"playout": "elastic", "adaptive": True}))
        elif raw.startswith("elastic:") and raw.removeprefix("elastic:").isdigit():
            ms = int(raw.removeprefix("elastic:"))
            out.append(Setting(f"elastic {ms} ms", {"playout": "elastic", "buffer_ms": ms, "adaptive": False}))
        elif raw == "voicemode":  # voicemode 9.0's own playback, modelled (engine/vmplayer.py)
            out.append(Setting(VOICEMODE_COLUMN, {"player": "voicemode", "adaptive": False}))
        elif raw == "adaptive":
            out.append(Setting("adaptive", {"playout": "fixed", "adaptive": True}))
        elif raw.removeprefix("fixed:").isdigit():
            ms = int(raw.removeprefix("fixed:"))
            out.append(Setting(f"{ms} ms", {"playout": "fixed", "buffer_ms": ms, "adaptive": False}))
        elif raw.startswith("preset:"):
            preset = load_preset(raw.removeprefix("preset:"))
            typed = parse_overrides(preset.values, preset.name)  # the matrix's axes set format and network
            out.append(Setting(preset.name, {k: v for k, v in typed.items() if k in PRESET_KEYS}))
        else:
            raise ValueError(f"unknown setting {raw!r}: give 'elastic', 'elastic:MS', fixed buffers in ms "
                             "('fixed:150' or '150'), 'adaptive', 'voicemode' or 'preset:NAME'")
    if not out:
        raise ValueError("no settings to measure")
    return out


@dataclass
class MatrixConfig:
    formats: list[str]
    networks: list[str]
    settings: list[Setting]
    repeats: int
    text: str = MATRIX_TEXT
    long_text: str | None = LONG_TEXT  # None: no headline
    long_repeats: int = 2
    base_url: str | None = None  # None: the embedded server, in its own process
    pace: float = 0.9  # the embedded server's pace (wall s per s of audio): 0.9 is 1.1x real time
    seed: int = 11


def _progress_bar(done: int, total: int, what: str, width: int = 24) -> str:
    filled = round(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}"


def _summary(ms: list[PlayMetrics]) -> dict[str, Any]:
    ttfa = [m.ttfa_ms for m in ms if m.ttfa_ms is not None]
    sound = [m.first_sound_ms for m in ms if m.first_sound_ms is not None]
    to_sound = [m.first_sound_ms - m.first_byte_ms for m in ms
                if m.first_sound_ms is not None and m.first_byte_ms is not None]
    under = [m.underrun_ms for m in ms]
    minutes = sum(m.audio_ms for m in ms) / 60_000.0
    after_first_byte = [m.ttfa_ms - m.first_byte_ms for m in ms
                        if m.ttfa_ms is not None and m.first_byte_ms is not None]
    return {
        "plays": len(ms),
        "failed": sum(1 for m in ms if m.error),
        "ttfa_after_first_byte_ms": _round(median(after_first_byte)),
        "stretched_pct": _round(median([m.stretched_pct for m in ms])),
        "stretch_in_pauses_pct": _round(median([m.stretch_in_pauses_pct for m in ms
                                                if m.stretch_in_pauses_pct is not None])),
        "speech_off_tempo_pct": _round(median([m.speech_off_tempo_pct for m in ms
                                               if m.speech_off_tempo_pct is not None])),
        "ttfa_ms": _round(median(ttfa)), "ttfa_p95_ms": _round(percentile(ttfa, 95)),
        **{f"ttfa_{k}_ms": _round(v) for k, v in spread(ttfa).items() if k != "p50"},
        "first_sound_ms": _round(median(sound)),
        **{f"first_sound_{k}_ms": _round(v) for k, v in spread(sound).items() if k != "p50"},
        "first_byte_to_first_sound_ms": _round(median(to_sound)),
        "leading_silence_ms": _round(median([m.leading_silence_ms for m in ms if m.leading_silence_ms is not None])),
        "request_sent_ms": _round(median([m.request_sent_ms for m in ms if m.request_sent_ms is not None])),
        "underrun_ms": _round(median(under)), "underrun_p95_ms": _round(percentile(under, 95)),
        "underruns": sum(m.underruns for m in ms),
        "underrun_ms_per_min": _round(sum(under) / minutes) if minutes else None,
        "plays_with_underruns": sum(1 for m in ms if m.underruns),
        "played_ms": _round(median([m.played_ms for m in ms])),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b; infinite when only b is zero, None when both are (no difference to show)."""
    if a is None or b is None:
        return None
    if b == 0:
        return None if a == 0 else math.inf
    return a / b


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "="
    return "none here" if math.isinf(r) else f"{r:.1f}x"


def run_matrix(cfg: MatrixConfig, progress: Progress) -> Report:
    columns = [s.label for s in cfg.settings] + list(BASELINES)
    overrides = {s.label: s.overrides for s in cfg.settings} | {
        "buffered": {"streaming_enabled": False, "adaptive": False, "playout": "fixed"},
        "naive": {"buffer_ms": 0, "adaptive": False, "playout": "fixed"}}
    total = len(cfg.formats) * len(cfg.networks) * len(columns) * cfg.repeats
    if cfg.long_text:
        total += len(cfg.formats) * 2 * cfg.long_repeats
    done = 0
    results: dict[str, dict[str, dict[str, list[PlayMetrics]]]] = {}
    headline: dict[str, dict[str, list[PlayMetrics]]] = {}

    def settings_for(fmt: str, network: str, extra: dict[str, Any]) -> Settings:
        link = "none" if network in SCENARIOS else network  # a server scenario plays over no simulated link
        auto = fmt == "auto"  # WORKBENCH_AUTO_FORMAT: each player's chooser learns over the cell's repeats
        return bench_options(sink="virtual", network=link, network_seed=cfg.seed, audio_format="pcm" if auto else fmt,
                             auto_format=auto, max_buffer_s=4.0, **extra)

    def player(settings: Settings, base_url: str, query: dict[str, str] | None) -> Any:
        if settings.player is PlayerKind.VOICEMODE:
            return VoicemodePlayer(settings, base_url=base_url, sink_factory=sink_factory("virtual"), extra_query=query)
        return StreamPlayer(settings, base_url=base_url, sink_factory=sink_factory("virtual"), extra_query=query)

    async def all_runs(base_url: str, query: dict[str, str] | None) -> None:
        nonlocal done
        for fmt in cfg.formats:
            for network in cfg.networks:
                cell = results.setdefault(fmt, {}).setdefault(network, {c: [] for c in columns})
                knobs = {**(query or {}), **SCENARIOS.get(network, {})}
                async with AsyncExitStack() as stack:
                    players = {c: await stack.enter_async_context(
                        player(settings_for(fmt, network, overrides[c]), base_url, knobs or None)) for c in columns}
                    for i in range(cfg.repeats):
                        for c, each in players.items():
                            progress(_progress_bar(done, total, f"{fmt} {network} {c} ({i + 1}/{cfg.repeats})"))
                            cell[c].append(await each.play(cfg.text))
                            done += 1
        if not cfg.long_text:
            return
        network = cfg.networks[0]
        for fmt in cfg.formats:  # the headline: how soon a long reply starts, streamed or buffered
            runs = headline.setdefault(fmt, {"streamed": [], "buffered": []})
            async with player(settings_for(fmt, network, {"adaptive": False}), base_url, query) as streamed, \
                    player(settings_for(fmt, network, overrides["buffered"]), base_url, query) as buffered:
                for i in range(cfg.long_repeats):
                    for mode, each in (("streamed", streamed), ("buffered", buffered)):
                        progress(_progress_bar(done, total, f"long reply, {fmt} {mode} ({i + 1}/{cfg.long_repeats})"))
                        runs[mode].append(await _until_first_audio(each, cfg.long_text))
                        done += 1
        progress(_progress_bar(done, total, "done"))

    if cfg.base_url:
        asyncio.run(all_runs(cfg.base_url, None))
    else:
        with ServerProcess() as server:
            asyncio.run(all_runs(server.base_url, {"pace": f"{cfg.pace:g}"}))
    return _report(cfg, columns, results, headline)


async def _until_first_audio(player: StreamPlayer, text: str) -> PlayMetrics:
    """Play until the first audio is heard, then stop: the headline needs only the TTFA."""
    def watch(snap: Any) -> None:
        if snap.ttfa_ms is not None:
            player.stop()

    player.add_observer(watch)
    try:
        started = time.perf_counter()
        metrics = await player.play(text)
        metrics.total_ms = (time.perf_counter() - started) * 1000.0
        return metrics
    finally:
        player.observers.remove(watch)


def _report(cfg: MatrixConfig, columns: list[str], results: dict[str, dict[str, dict[str, list[PlayMetrics]]]],
            headline: dict[str, dict[str, list[PlayMetrics]]]) -> Report:
    where = cfg.base_url or (f"embedded server at {1 / cfg.pace:.2g}x real time" if cfg.pace else "embedded server")
    audio_s = [m.audio_ms / 1000.0 for f in results.values() for n in f.values() for m in n[columns[0]]]
    report = Report(f"Bench matrix: {len(cfg.formats)} formats x {len(cfg.networks)} networks x "
                    f"{len(cfg.settings)} settings + 2 baselines x {cfg.repeats} repeats ({where}, "
                    f"{(median(audio_s) or 0):.1f} s reply)", machine_description())
    cells: list[dict[str, Any]] = []
    for fmt, by_net in results.items():
        for network, by_col in by_net.items():
            summaries = {c: _summary(ms) for c, ms in by_col.items()}
            for c in columns:
                s = summaries[c]
                vm = summaries.get(VOICEMODE_COLUMN)
                cells.append({"format": fmt, "network": network, "setting": c, "baseline": c in BASELINES, **s,
                              "ttfa_buffered_over_this": _ratio(summaries["buffered"]["ttfa_ms"], s["ttfa_ms"]),
                              "underrun_ms_naive_over_this": _ratio(summaries["naive"]["underrun_ms_per_min"],
                                                                    s["underrun_ms_per_min"]),
                              **({"first_sound_voicemode_over_this": _ratio(vm["first_sound_ms"], s["first_sound_ms"]),
                                  "played_of_voicemode": _ratio(s["played_ms"], vm["played_ms"])} if vm else {})})
    heads: dict[str, dict[str, Any]] = {}
    for fmt, runs in headline.items():
        streamed = median([m.ttfa_ms for m in runs["streamed"] if m.ttfa_ms is not None])
        buffered = median([m.ttfa_ms for m in runs["buffered"] if m.ttfa_ms is not None])
        heads[fmt] = {"streamed_ttfa_ms": _round(streamed), "buffered_ttfa_ms": _round(buffered),
                      "buffered_over_streamed": _ratio(buffered, streamed),
                      "reply_s": _round(max((m.audio_ms for m in runs["buffered"]), default=0) / 1000.0)}
    report.data = {"suite": "matrix", "machine": report.machine, "where": where, "repeats": cfg.repeats,
                   "formats": cfg.formats, "networks": cfg.networks, "settings": columns,
                   "cells": cells, "headline": heads,
                   "settings_overrides": {s.label: s.overrides for s in cfg.settings}}
    report.rows = [(f"headline, {fmt}: TTFA of a {h['reply_s']:g} s reply, buffered / streamed",
                    f"{h['buffered_ttfa_ms']:.0f} / {h['streamed_ttfa_ms']:.0f} ms = "
                    f"{_fmt_ratio(h['buffered_over_streamed'])}", f"network {cfg.networks[0]}, 150 ms initial buffer")
                   for fmt, h in heads.items() if h["buffered_ttfa_ms"] and h["streamed_ttfa_ms"]]
    report.extra = matrix_markdown(cells)
    return report


def matrix_markdown(cells: list[dict[str, Any]]) -> str:
    vm = any("first_sound_voicemode_over_this" in c for c in cells)
    lines = ["| format | network | setting | TTFA P50 (IQR; P90) ms | first sound P50 (IQR; P90) ms | first byte to "
             "first sound | underrun ms per play median (p95) | underruns | stretched | TTFA: buffered / this "
             "| underrun ms: naive / this |" + (" played s | first sound: voicemode 9.0 / this |" if vm else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if vm else "")]
    for c in cells:
        def num(v: float | None) -> str:
            return "–" if v is None else f"{v:.0f}"
        lines.append(f"| {c['format']} | {c['network']} | {c['setting']} | "
                     f"{num(c['ttfa_ms'])} ({num(c['ttfa_iqr_ms'])}; {num(c['ttfa_p90_ms'])}) "
                     f"| {num(c['first_sound_ms'])} ({num(c['first_sound_iqr_ms'])}; {num(c['first_sound_p90_ms'])}) "
                     f"| {num(c['first_byte_to_first_sound_ms'])} "
                     f"| {num(c['underrun_ms'])} ({num(c['underrun_p95_ms'])}) | {c['underruns']} in "
                     f"{c['plays_with_underruns']}/{c['plays']} plays"
                     + (f", {c['failed']} failed" if c["failed"] else "")
                     + f" | {c['stretched_pct'] or 0:.0f}%"
                     + f" | {'' if c['setting'] == 'buffered' else _fmt_ratio(c['ttfa_buffered_over_this'])} "
                     f"| {'' if c['setting'] == 'naive' else _fmt_ratio(c['underrun_ms_naive_over_this'])} |"
                     + (f" {(c['played_ms'] or 0) / 1000:.1f} | " + ("" if c["setting"] == VOICEMODE_COLUMN else
                                                                    _fmt_ratio(c["first_sound_voicemode_over_this"]))
                        + " |" if vm else ""))
    return "\n".join(lines) + "\n"


# -- the picture ------------------------------------------------------------------------------------
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f")
BASELINE_COLOURS = {"buffered": "#d62728", "naive": "#ff7f0e"}


def plot_svg(cells: list[dict[str, Any]], title: str) -> str:
    """TTFA (x, log scale) against underrun ms per minute of audio (y, log scale), one point per setting and
    network (medians over formats), labelled with the network. Plain SVG: no plotting library."""
    w, h, left, right, top, bottom = 760, 460, 70, 170, 40, 50
    points: dict[str, list[tuple[str, float, float]]] = {}
    for setting in dict.fromkeys(c["setting"] for c in cells):
        for network in dict.fromkeys(c["network"] for c in cells):
            mine = [c for c in cells
                    if c["setting"] == setting and c["network"] == network and c["ttfa_ms"] is not None]
            if mine:
                points.setdefault(setting, []).append((network, median([c["ttfa_ms"] for c in mine]) or 0.0,
                                                       median([c["underrun_ms_per_min"] or 0.0 for c in mine]) or 0.0))
    xs = [p[1] for ps in points.values() for p in ps] or [1.0]
    ys = [p[2] for ps in points.values() for p in ps] or [0.0]
    lo_dec = math.floor(math.log10(max(min(xs), 1.0)))  # TTFA on a log scale too: 0.3 s and 7 s both readable
    hi_dec = max(math.ceil(math.log10(max(max(xs), 1.0) * 1.05)), lo_dec + 1)
    y_decades = max(1, math.ceil(math.log10(max(ys) + 1)))

    def px(x: float) -> float:
        return left + (w - left - right) * (math.log10(max(x, 1.0)) - lo_dec) / (hi_dec - lo_dec)

    def py(y: float) -> float:
        return h - bottom - (h - top - bottom) * math.log10(y + 1) / y_decades

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2 - right / 2}" y="22" text-anchor="middle" font-size="14">{_esc(title)}</text>']
    x_ticks = [m * 10 ** d for d in range(lo_dec, hi_dec) for m in (1, 2, 5)] + [10 ** hi_dec]
    for x in x_ticks:  # x grid
        out.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{h - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{px(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{x:.0f}</text>')
    for d in range(y_decades + 1):  # y grid: 0, 9, 99 ... shown as 0, 10, 100
        y = 10 ** d - 1
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{w - right}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{0 if d == 0 else 10 ** d}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">TTFA, ms (median, log)</text>')
    out.append(f'<text transform="translate(16 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">'
               'underrun ms per minute of audio (log)</text>')
    for k, (setting, ps) in enumerate(points.items()):
        colour = BASELINE_COLOURS.get(setting, PALETTE[k % len(PALETTE)])
        for network, x, y in ps:
            r = max(3.0, 8.0 - 1.5 * k)  # later settings smaller, so points that coincide stay visible
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{r:g}" fill="{colour}" fill-opacity="0.85">'
                       f'<title>{_esc(setting)}, {_esc(network)}: TTFA {x:.0f} ms, {y:.0f} underrun ms/min'
                       '</title></circle>')
            out.append(f'<text x="{px(x) + 7:.1f}" y="{py(y) - 5:.1f}" font-size="10" fill="{colour}">'
                       f'{_esc(network)}</text>')
        ly = top + 10 + 20 * k
        out.append(f'<circle cx="{w - right + 20}" cy="{ly}" r="5" fill="{colour}"/>')
        out.append(f'<text x="{w - right + 30}" y="{ly + 4}">{_esc(setting)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run(o: BenchOptions, progress: Progress) -> Report:
    """`workbench bench` (matrix): the options checked, the matrix run, its picture added."""
    from ..engine.decoding.formats import NAMES
    from ..engine.fetching.network import PROFILES
    from ..usecases.presets import PresetError

    quick = o.quick
    try:
        cfg = MatrixConfig(
            formats=parse_list(o.formats or ("pcm,mp3" if quick else "pcm,mp3,opus"), [*NAMES, "auto"], "format"),
            networks=parse_list(o.networks or ("4g" if quick else "lan,wifi,4g,flaky,near-real-time"),
                                [*PROFILES, *SCENARIOS], "network profile"),
            settings=parse_settings(o.settings or ("elastic,150" if quick else "elastic,150,adaptive")),
            repeats=o.plays_or(5, 1),
            text=o.text or (QUICK_TEXT if quick else MatrixConfig.text),
            long_text=None if not o.headline else (QUICK_TEXT if quick else LONG_TEXT),
            long_repeats=1 if quick else 2,
            base_url=o.base_url, pace=o.pace if o.pace is not None else 0.9)
        players = parse_list(o.players or "workbench", PLAYERS, "player")
    except (ValueError, PresetError) as exc:
        raise BenchError(str(exc)) from None
    if "voicemode" in players and all(s.label != VOICEMODE_COLUMN for s in cfg.settings):
        cfg.settings.append(Setting(VOICEMODE_COLUMN, {"player": "voicemode", "adaptive": False}))
    if "workbench" not in players:
        cfg.settings = [s for s in cfg.settings if s.label == VOICEMODE_COLUMN]
    if cfg.base_url and any(n in SCENARIOS for n in cfg.networks):
        raise BenchError(f"{', '.join(SCENARIOS)} needs the embedded server's knobs: not with --base-url")
    if cfg.pace <= 0:
        raise BenchError("--pace must be more than 0")
    report = run_matrix(cfg, progress)
    report.files["matrix.svg"] = plot_svg(report.data["cells"], "TTFA against underruns, per setting and network")
    return report
