"""The voicemode bridge: what runs inside voicemode's own process when `workbench voicemode enable` is on.

voicemode keeps everything that is its own: the request, its control channel (stop, pause, skip back and
forward), the history it captures for replay, its event log, `save_audio` and the metrics it returns.
Only where its audio goes changes: into this engine's jitter buffer and elastic playout, on the device,
instead of blocking writes to a sounddevice stream; and compressed replies are decoded as they arrive
instead of after 32 KB or the whole download.

- `boot`: what the `.pth` file imports at interpreter start; patches `voice_mode.streaming` when (and
  only when) voicemode imports it.
- `patch`: the patch itself (which voicemode functions it relies on is written there).
- `stream`: a sounddevice-like `OutputStream` that plays through the engine.
- `decode`: a client whose replies yield PCM decoded from any format, as voicemode's PCM loop reads it.
- `publish`: each reply's live state and final figures, where `workbench voicemode watch` reads them.

Only the engine's playout parts are imported here (no HTTP client, no Textual): voicemode's environment
has its own openai and httpx, and nothing of ours must replace them.
"""
