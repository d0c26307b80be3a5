"""How the device wakes the pump: a byte down a pipe after the block it took."""

from __future__ import annotations

import contextlib
import os
import select


class BlockWake:
    """A pipe the sink's audio thread writes a byte to after a block it takes (every block, or those
    that leave the ring below what the refilling thread asked for), so that a thread refilling the buffer
    (elastic playout's pump) wakes right after the device has taken audio, instead of polling twice a
    block. Any thread may `notify` too (audio has arrived).

    Both ends are non-blocking: a byte nobody reads is dropped once the pipe is full. The sink owns it
    and closes it when the sink is freed, after its audio thread has stopped writing.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def notify(self) -> None:
        with contextlib.suppress(OSError):  # full (nobody has read for a while), or closed
            os.write(self.write_fd, b"\1")

    def wait(self, timeout: float) -> bool:
        """Wait until notified (True) or `timeout` seconds (False); forget the notifications so far."""
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(OSError):
            os.read(self.read_fd, 4096)
        return True

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self.write_fd = -1

    def __del__(self) -> None:
        self.close()
