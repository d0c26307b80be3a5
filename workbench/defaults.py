"""Defaults shared by the command line and the TUI."""

DEFAULT_TEXT = (
    "Hello! This is the stream workbench. I start speaking while the rest of this reply is still "
    "downloading, and a small jitter buffer keeps the sound smooth when the network hiccups."
)
