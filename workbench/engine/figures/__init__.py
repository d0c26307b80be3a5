"""Figures: what a play measured (`metrics`: TTFA, underruns, buffer level, throughput, decode time) and
where sound begins in a signal (`onset`)."""
