"""Streaming time-stretch options on the same 440 Hz tone at 24 kHz: latency, CPU, pitch, clicks.

The measurement behind elastic playout's choice of its own WSOLA (docs/design.md, "Elastic playout"). The other
libraries are not dependencies; run it in a scratch environment:

    python3 -m venv /tmp/tsm && /tmp/tsm/bin/pip install numpy audiotsm pedalboard pylibrb
    /tmp/tsm/bin/python scripts/compare_stretchers.py
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
rate = 24000
t = np.arange(rate * 4) / rate
tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

def pitch(y):
    y = y[2000:-2000]
    zc = np.flatnonzero(np.diff(np.signbit(y).astype(int)) != 0)
    return (len(zc) - 1) / 2 / ((zc[-1] - zc[0]) / rate)

def report(name, y, first_out_at, dt, r):
    print(f"{name:28s} rate {r}: first output after {first_out_at * 1000 / rate:5.1f} ms of input, "
          f"length {len(y) / len(tone):.3f} (want {1 / r:.3f}), pitch {pitch(y):.1f} Hz, largest step "
          f"{np.abs(np.diff(y)).max():.3f}, {len(tone) / rate / dt:.0f}x real time")

def ours(r):
    from workbench.engine.playout.stretch import Stretcher
    s = Stretcher(rate)
    out, first, t0 = [], None, time.perf_counter()
    for i in range(0, len(tone), 240):
        s.feed(tone[i : i + 240])
        y = s.pull(r, 4)
        if len(y) and first is None:
            first = i + 240
        out.append(y)
    s.end()
    out.append(s.pull(r, 10000))
    report("ours (WSOLA, numpy)", np.concatenate(out), first, time.perf_counter() - t0, r)

def audiotsm_wsola(r):
    from audiotsm import wsola
    from audiotsm.io.array import ArrayReader, ArrayWriter
    # audiotsm's streaming API: feed frames through a reader; measure the output as a whole
    t0 = time.perf_counter()
    reader = ArrayReader(tone.reshape(1, -1).astype(np.float64))
    writer = ArrayWriter(1)
    tsm = wsola(1, speed=r, frame_length=480, synthesis_hop=240, tolerance=120)
    tsm.run(reader, writer)
    y = writer.data.reshape(-1).astype(np.float32)
    # latency: its frames are frame_length long and need the tolerance ahead: frame + tolerance
    report("audiotsm wsola (2017)", y, 480 + 120, time.perf_counter() - t0, r)

def rubberband(r):
    import pylibrb
    s = pylibrb.RubberBandStretcher(sample_rate=rate, channels=1,
                                    options=pylibrb.Option.PROCESS_REALTIME | pylibrb.Option.ENGINE_FINER)
    s.time_ratio = 1 / r
    lat = s.get_start_delay() if hasattr(s, "get_start_delay") else s.get_latency()
    out, first, t0 = [], None, time.perf_counter()
    for i in range(0, len(tone), 240):
        s.process(tone[i:i + 240].reshape(1, -1), final=False)
        avail = s.available()
        if avail > 0:
            y = s.retrieve(avail).reshape(-1)
            if first is None:
                first = i + 240
            out.append(y)
    s.process(np.zeros((1, 0), dtype=np.float32), final=True)
    avail = s.available()
    if avail > 0:
        out.append(s.retrieve(avail).reshape(-1))
    y = np.concatenate(out)[lat:] if lat else np.concatenate(out)
    report(f"Rubber Band R3 real-time (start delay {lat * 1000 / rate:.0f} ms)", y, first,
           time.perf_counter() - t0, r)

def pedal(r):
    import pedalboard
    t0 = time.perf_counter()
    y = pedalboard.time_stretch(tone.reshape(1, -1), rate, stretch_factor=r).reshape(-1)
    report("pedalboard time_stretch (whole)", y, len(tone), time.perf_counter() - t0, r)

for f in (ours, audiotsm_wsola, rubberband, pedal):
    for r in (0.9, 1.1):
        try:
            f(r)
        except Exception as exc:
            print(f.__name__, r, "failed:", repr(exc)[:200])
