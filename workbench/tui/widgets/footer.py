"""The footer of the main screen: the keys that fit the width, in the order of use, and never one cut in half
(at 80 columns the last one showed as a stray letter). F1 lists every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

KEY_GAP = 1  # the compact footer's space after each key and description


class FittingFooter(Footer):
    def compose(self) -> ComposeResult:
        width = self.size.width or self.app.size.width
        used = shown = 0
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                need = len(widget.key_display) + 1 + len(widget.description) + KEY_GAP
                if used + need > width:
                    break
                used += need
                shown += 1
            yield widget
        self.styles.grid_size_columns = max(shown, 1)

    def on_resize(self, event: Resize) -> None:
        self.refresh(recompose=True)
