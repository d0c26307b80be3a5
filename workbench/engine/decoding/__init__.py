"""Decoding: bytes of any response format into mono float32 at the device's rate.

`formats` is the registry, `base` the decoder protocol and resampler, `decoders` picks one per format
(`pcmformat` for raw PCM, `avdecoders` for everything PyAV decodes) and `framing` finds frame edges in
compressed streams so each frame is decoded as soon as its bytes are in."""
