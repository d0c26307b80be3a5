"""What a listener would say of a play, judged from its audio against the clean reply: the tempo each part
of the reply was played at (where time was added or taken away, and how far speech left its own pace), the
silences heard where the reply speaks, and two speech-quality models.

Tempo comes from aligning the played audio with the reference: log-mel frames every 10 ms, dynamic time
warping over their cosine distances, then, for each reference frame, the played frames it took. Played
frames that are silent where the reference speaks are gaps (underruns), not slowing. The reference's own
level marks speech and pauses; its runs of each are where time is counted. Pure numpy.

Quality: DNSMOS (P.835: signal, background, overall) and PLCMOS (made for packet-loss concealment), the
ONNX models the `speechmos` package ships, run at 16 kHz (`pip install 'stream-workbench[quality]'`).
Neither model hears tempo well, which is why the tempo is measured apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_S = 0.010  # one frame every 10 ms
MODEL_RATE = 16_000
SPEECH_BELOW_PEAK_DB = 40.0  # a reference frame this far below its loud frames is a pause
SILENT_DBFS = -55.0  # a played frame below this is silent (a gap, where the reference speaks)
BAND = (0.9, 1.1)  # speech played outside this tempo is what a listener can notice
TEMPO_WINDOW_S = 0.3  # the local tempo of speech: over this much of the reference's speech


@dataclass
class Tempo:
    speech_s: float  # the reference's speech
    pause_s: float  # ... and its pauses
    added_s: float  # played time beyond the reference's (slowing), summed over runs that grew
    removed_s: float  # ... and short of it (speeding up), over runs that shrank
    added_in_pauses_pct: float | None  # of the time added, the share that fell in pauses
    removed_in_pauses_pct: float | None
    speech_off_band_pct: float  # speech time played outside 0.9-1.1x
    speech_off_5_pct: float  # ... outside 0.95-1.05x
    slowest: float  # the slowest local tempo in speech (1.0: as said)
    gap_ms: float  # silence played where the reference speaks
    first_second_slowed_ms: float  # speech time added in the first second of sound (pauses and gaps apart)


def _frames(x: np.ndarray, rate: int) -> np.ndarray:
    hop = int(round(rate * HOP_S))
    size = 2 * hop
    n = max(1, 1 + (len(x) - size) // hop) if len(x) >= size else 1
    padded = np.zeros((n - 1) * hop + size, dtype=np.float64)
    padded[:min(len(x), len(padded))] = x[:len(padded)]
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return padded[idx]


def frame_levels_db(x: np.ndarray, rate: int) -> np.ndarray:
    """Each 10 ms frame's RMS level, dBFS."""
    f = _frames(x, rate)
    return 10.0 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def _mel_bank(rate: int, n_fft: int, bands: int = 40) -> np.ndarray:
    def mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges_mel = np.linspace(mel(np.array(60.0)), mel(np.array(min(7600.0, rate / 2))), bands + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    bank = np.zeros((bands, len(freqs)))
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        bank[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return bank


def log_mel(x: np.ndarray, rate: int) -> np.ndarray:
    """Log-mel frames (n, 40), every 10 ms, 20 ms Hann windows."""
    f = _frames(x, rate)
    n_fft = 1 << int(np.ceil(np.log2(f.shape[1])))
    spec = np.abs(np.fft.rfft(f * np.hanning(f.shape[1]), n=n_fft, axis=1)) ** 2
    return np.log(spec @ _mel_bank(rate, n_fft).T + 1e-8)


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest alignment of frame sequences `a` (n, d) and `b` (m, d) by cosine distance: index pairs
    from (0, 0) to (n-1, m-1), each step one frame on either or both. Filled an anti-diagonal at a time."""
    an = a - a.mean(axis=1, keepdims=True)
    bn = b - b.mean(axis=1, keepdims=True)
    an /= np.linalg.norm(an, axis=1, keepdims=True) + 1e-9
    bn /= np.linalg.norm(bn, axis=1, keepdims=True) + 1e-9
    cost = 1.0 - an @ bn.T
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    step = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0: both, 1: a only, 2: b only
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        best = np.argmin(options, axis=0)
        total[i, j] = cost[i - 1, j - 1] + options[best, np.arange(len(i))]
        step[i, j] = best
    path_a, path_b = [], []
    i, j = n, m
    while i > 0 and j > 0:
        path_a.append(i - 1)
        path_b.append(j - 1)
        s = step[i, j]
        if s == 0:
            i, j = i - 1, j - 1
        elif s == 1:
            i -= 1
        else:
            j -= 1
    return np.array(path_a[::-1]), np.array(path_b[::-1])


def _runs(flags: np.ndarray) -> list[tuple[int, int, bool]]:
    """Runs of equal values: (start, end, value)."""
    edges = np.flatnonzero(np.diff(flags.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(flags)]])
    return [(int(s), int(e), bool(flags[s])) for s, e in zip(starts, ends, strict=True)]


def sounding(x: np.ndarray, rate: int, threshold_db: float = SILENT_DBFS) -> np.ndarray:
    """`x` from its first sounding frame to its last: leading and trailing silence cut."""
    levels = frame_levels_db(x, rate)
    loud = np.flatnonzero(levels > threshold_db)
    if not len(loud):
        return x[:0]
    hop = int(round(rate * HOP_S))
    return x[loud[0] * hop:min(len(x), (loud[-1] + 2) * hop)]


def tempo(reference: np.ndarray, played: np.ndarray, rate: int) -> Tempo:
    """How `played` (what was heard, leading and trailing silence cut) spent the time of `reference`."""
    ref_levels = frame_levels_db(reference, rate)
    speech = ref_levels > np.percentile(ref_levels, 95) - SPEECH_BELOW_PEAK_DB
    path_r, path_p = dtw_path(log_mel(reference, rate), log_mel(played, rate))
    n_ref, n_play = len(ref_levels), int(path_p[-1]) + 1
    # each played frame belongs to one reference frame (the first it was aligned with)
    owner = np.zeros(n_play, dtype=np.int64)
    first = np.ones(len(path_p), dtype=bool)
    first[1:] = path_p[1:] != path_p[:-1]
    owner[path_p[first]] = path_r[first]
    play_levels = frame_levels_db(played, rate)[:n_play]
    gap = (play_levels < SILENT_DBFS) & speech[owner]
    took = np.bincount(owner[~gap], minlength=n_ref).astype(np.float64)  # played frames per reference frame
    added = removed = added_pause = removed_pause = 0.0
    for start, end, is_speech in _runs(speech):
        extra = took[start:end].sum() - (end - start)
        if extra > 0:
            added += extra
            added_pause += 0.0 if is_speech else extra
        else:
            removed -= extra
            removed_pause -= 0.0 if is_speech else extra
    # the local tempo of speech: over the speech frames around each one, the pauses between left out
    half = int(round(TEMPO_WINDOW_S / HOP_S / 2))
    spoken = np.flatnonzero(speech)
    cumulative = np.concatenate([[0.0], np.cumsum(took[spoken])])
    lo = np.clip(np.arange(len(spoken)) - half, 0, len(spoken))
    hi = np.clip(np.arange(len(spoken)) + half + 1, 0, len(spoken))
    spent = cumulative[hi] - cumulative[lo]
    local = np.ones(n_ref)
    local[spoken] = np.where(spent > 0, (hi - lo) / np.maximum(spent, 1e-9), 1.0)
    in_speech = local[speech]
    speech_frames = max(1, int(speech.sum()))
    # speech slowed in the first second heard: its played speech frames against the speech they played
    opening = slice(0, min(n_play, int(round(1.0 / HOP_S))))
    said = owner[opening][~gap[opening] & speech[owner[opening]]]
    first_added = len(said) - len(np.unique(said))
    return Tempo(
        speech_s=float(speech.sum()) * HOP_S, pause_s=float((~speech).sum()) * HOP_S,
        added_s=added * HOP_S, removed_s=removed * HOP_S,
        added_in_pauses_pct=100.0 * added_pause / added if added > 0 else None,
        removed_in_pauses_pct=100.0 * removed_pause / removed if removed > 0 else None,
        speech_off_band_pct=100.0 * float(((in_speech < BAND[0]) | (in_speech > BAND[1])).sum()) / speech_frames,
        speech_off_5_pct=100.0 * float(((in_speech < 0.95) | (in_speech > 1.05)).sum()) / speech_frames,
        slowest=float(in_speech.min()) if len(in_speech) else 1.0,
        gap_ms=float(gap.sum()) * HOP_S * 1000.0,
        first_second_slowed_ms=max(0.0, float(first_added)) * HOP_S * 1000.0)


@dataclass
class Scores:
    plcmos: float
    dnsmos_ovrl: float
    dnsmos_sig: float
    dnsmos_bak: float


def models_missing() -> str | None:
    """What to install for the speech-quality models, or None when they are here."""
    import importlib.util

    missing = [m for m in ("speechmos", "onnxruntime", "librosa") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"the speech-quality models need {', '.join(missing)}: pip install 'stream-workbench[quality]' "
            "(or ./test.sh, which installs it)")


def scores(x: np.ndarray, rate: int) -> Scores:
    """PLCMOS and DNSMOS of `x` (mono float32 at `rate`), resampled to 16 kHz. PLCMOS averages raters
    drawn at random: the draw is seeded, so the same audio always gets the same score."""
    import soxr
    from speechmos import dnsmos, plcmos

    audio = np.clip(soxr.resample(x.astype(np.float32), rate, MODEL_RATE), -1.0, 1.0)
    state = np.random.get_state()
    np.random.seed(0)
    try:
        plc = plcmos.run(audio, MODEL_RATE)
    finally:
        np.random.set_state(state)
    dns = dnsmos.run(audio, MODEL_RATE)
    return Scores(float(plc["plcmos"]), float(dns["ovrl_mos"]), float(dns["sig_mos"]), float(dns["bak_mos"]))
