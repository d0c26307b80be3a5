"""What the workbench does, without a screen: tune a buffer, make and apply presets, compare two plays.

The CLI and the TUI both call these; none of them imports either front end.
"""
