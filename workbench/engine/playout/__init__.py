"""Playout: decoded audio into the device's ring, on time.

`buffer` is the jitter buffer (the ring the device callback reads; `_playout.c` is its consumer in C),
`elastic` the pump that feeds it through the time-`stretch`er, and `adaptive` the target learned from
the network. What the pump does next is decided in one place: `controller.decide`, a pure function of
the playout's status, which the pump only executes."""
