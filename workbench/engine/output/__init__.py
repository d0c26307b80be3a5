"""Output: the sinks the ring plays into (a PortAudio device through sounddevice, the C callback in
`nativesink`, a virtual device with its own clock, a WAV file) and `sinkfactory`, which picks one from
the settings."""
