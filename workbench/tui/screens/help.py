"""The help screen: keys, and what the graph and the counters mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ..widgets.footer import FittingFooter

HELP = """\
# Stream Workbench

Speak a text through an OpenAI-compatible `/v1/audio/speech` endpoint while it downloads, and watch
what the listener gets.

## Keys
| key | does |
|---|---|
| `p` / Enter on Play | play the text with the current settings |
| `s` | stop the play (with a short fade), or a running tune |
| `w` | voicemode, watched: the reply it is speaking now (through the bridge) on the graph, its recent replies and their figures, what they say about the buffer (`a` there merges that buffer into voicemode.env, a diff first); `o` there turns the bridge on or off |
| `k` | pause the play where it is (a 5 ms fade; the download goes on), and resume it from there; paused time is not underrun time |
| `r` | replay the last text with the current settings |
| `c` | compare A vs B (two formats, presets or players, same text and network) |
| `v` | voicemode today vs this engine: the text played as voicemode 9.0 plays it, then by this engine, compared |
| `e` | export the settings as a preset, or apply them to voicemode |
| `l` | load a shipped preset or any `.env` file |
| `t` | show or hide the settings (beside the graph from 120 columns; below that, in its place) |
| `g` / `m` / `h` | the graph, the counters or the run history, where the terminal is too small to show them all (`h` also moves to the history, whose rows show their run's graph) |
| `o` | after a format change: the new format takes the old one's initial buffer, chunk size and max buffer |
| `b` | set the initial buffer that would have played every run like the last one without an underrun |
| `u` | tune: find the smallest initial buffer (and, with fixed buffering, max buffer) that plays this format and network clean three times over, then set it; silent plays on a virtual sink (with the voicemode player: the format and chunk size voicemode plays best) |
| `Esc` | leave the text box (so the keys above work), close a dialog |
| `F1` | this help, from any screen |
| `ctrl+p` | command palette: every action |
| `q` | quit |

## The screen
The line under the buttons always shows the state, TTFA, underruns and the buffer now against its
adaptive target, or before a play the initial buffer it will start from (and device underflows on a sound
card); the line above the footer says what went wrong, what
tuning is doing and what a load or an edit changed. Warnings and errors also pop up for a while.

## The graph
Cyan: audio buffered (ms, on a compressed scale: 0 to 300 ms takes about half the height, so the
range tuning is about stays readable while a fast server fills the buffer to seconds). Yellow: the
adaptive target. Grey line: the initial buffer
(`VOICEMODE_STREAM_BUFFER_MS`). Green line: first sound heard (TTFA). Red lines: underruns, where the
buffer ran dry and playback paused to rebuffer. Violet, on the right-hand scale: elastic playout's rate
(below 1.0 it is playing slower to let the buffer grow), drawn when it left 1.0.

## The counters
- **TTFB**: response headers received. **TTFA**: first sound out of the device (its DAC clock), not
  the first byte.
- **underruns**: times the buffer ran dry, and the silence they caused. **device underflows**:
  glitches PortAudio reported itself (n/a on the virtual sink: there is no device to report them).
- **buffer now**: audio in hand at this moment; **buffer avg/min**: over the whole play, once it ends.
- **arrival pace**: seconds of audio received per second of download; under 1x the endpoint is slower
  than real time and the buffer has to hold what the rest of the reply will lack.
- **adaptive target**: the initial buffer (`VOICEMODE_STREAM_BUFFER_MS`) as adaptive buffering moved it:
  what fixed playout waits for before it starts or resumes, and what elastic playout grows the buffer to;
  with `WORKBENCH_ADAPTIVE` on (the default) it is learned from how late audio arrives and rises after an
  underrun.
- **clean from**: the smallest initial buffer that would have played this run without an underrun.
- **decode p95**: time to decode a chunk, 95th percentile.
- **playout**: elastic (the rate now; at the end, the share of the audio played slower or faster) or
  fixed.

## Settings
**Playout**: elastic (the default) starts playing after one device block and grows the buffer to
its target by playing up to half speed, pitch kept, while the buffer is short; fixed waits for the
whole buffer first, as voicemode's design describes. Edits apply to the next play; the buffer also
applies live. A typed value applies on Enter or when you leave the field; one that is refused leaves
the last good value in use, and the hint under the field says so. Each format keeps its own
buffer, chunk and max-buffer values. Settings come from voicemode's `.env` files, the environment,
`--preset` and flags; `workbench settings` shows where each value came from.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 96%; height: 1fr; border: thick $primary;
        background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # arrows and page keys scroll it at once
