"""What every command shares: the user-error type, the settings options, and the endpoint to play on."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from ..engine.decoding.formats import NAMES as FORMATS
from ..engine.settings import LOCAL, NETWORKS, SPECS, Settings, load_settings

Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


# -- argument parsing ---------------------------------------------------------------------------------


def add_settings_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (override the environment and voicemode's .env files)")
    g.add_argument("--preset", type=Path, metavar="FILE", help="a voicemode-style .env file to apply")
    g.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint, or 'local' for the embedded server")
    g.add_argument("--format", choices=(*FORMATS, "auto"), help="response format to ask for; auto: pcm where the "
                   "link carries it with room, mp3 where it does not, chosen per reply (WORKBENCH_AUTO_FORMAT)")
    g.add_argument("--voice", help="voice name (embedded server: alloy, nova, ..., or test-signal)")
    g.add_argument("--model", help="model name")
    g.add_argument("--speed", help="speaking speed, 0.25 to 4.0")
    g.add_argument("--buffer-ms", metavar="MS", help="initial buffer (VOICEMODE_STREAM_BUFFER_MS): elastic playout "
                   "grows to it while playing, fixed playout waits for it")
    g.add_argument("--chunk-size", metavar="BYTES", help="download chunk size")
    g.add_argument("--max-buffer", metavar="SECONDS", help="maximum buffer (VOICEMODE_STREAM_MAX_BUFFER)")
    g.add_argument("--buffered", action="store_true", help="download everything, then play (streaming off)")
    g.add_argument("--sink", metavar="SINK", help="device, virtual, wav:PATH or auto (default)")
    g.add_argument("--network", choices=NETWORKS, help="simulate a network: lan, wifi, 4g, flaky, satellite, edge")
    g.add_argument("--playout", metavar="MODE", help="elastic (default: start after 20 to 30 ms, grow the "
                   "buffer by playing slightly slower) or fixed (wait for the whole initial buffer)")
    g.add_argument("--stream-format", metavar="KIND", help="audio (the format's bytes, the default) or sse "
                   "(server-sent events of base64 audio; WORKBENCH_STREAM_FORMAT)")
    g.add_argument("--player", metavar="WHO", help="workbench (this engine, the default) or voicemode (voicemode "
                   "9.0's playback, modelled: what its users hear today; WORKBENCH_PLAYER)")
    g.add_argument("--split", metavar="MODE", help="ask for the reply a sentence at a time, the next while one "
                   "plays: auto (the default: when the endpoint turned out not to stream), sentence (always) or off "
                   "(WORKBENCH_SPLIT)")
    g.add_argument("--trim-leading-silence", metavar="MS", help="skip up to MS of the reply's leading silence "
                   "(below -50 dBFS; WORKBENCH_TRIM_LEADING_SILENCE; 0, the default, is off)")
    g.add_argument("--channels", metavar="MODE", help="mono (the default: a stream's channels are averaged) or stereo "
                   "(a stereo stream keeps its channels; WORKBENCH_CHANNELS)")
    g.add_argument("--pan", metavar="P", help="place a mono voice from -1 (left) to 1 (right), constant power; "
                   "plays in stereo (WORKBENCH_PAN)")
    g.add_argument("--no-voicemode-env", action="store_true",
                   help="do not read ~/.voicemode/voicemode.env or a project .voicemode.env")


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "base_url", None):
        url = args.base_url.strip()
        if url != LOCAL and not url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {url!r} is not an http(s) URL (or 'local')")
        overrides["base_urls"] = (url,)
    if getattr(args, "format", None) == "auto":  # WORKBENCH_AUTO_FORMAT; voicemode's format key is left alone
        overrides["auto_format"] = True
        args.format = None
    for flag, attr in (("format", "audio_format"), ("buffer_ms", "buffer_ms"), ("chunk_size", "chunk_size"),
                       ("max_buffer", "max_buffer_s"), ("speed", "speed"), ("sink", "sink"), ("network", "network"),
                       ("playout", "playout"), ("trim_leading_silence", "trim_leading_ms"),
                       ("stream_format", "stream_format"), ("split", "split"), ("player", "player"),
                       ("channels", "channels"), ("pan", "pan")):
        value = getattr(args, flag, None)
        if value is not None:
            spec = next(s for s in SPECS if s.attr == attr)
            overrides[attr] = spec.convert(str(value), f"--{flag.replace('_', '-')}")
    if getattr(args, "voice", None):
        overrides["voices"] = (args.voice,)
    if getattr(args, "model", None):
        overrides["models"] = (args.model,)
    if getattr(args, "buffered", False):
        overrides["streaming_enabled"] = False
    if getattr(args, "no_cache", False):
        overrides["cache"] = False
    if getattr(args, "log", None):
        overrides["metrics_log"] = args.log
    return load_settings(environ=environ, read_voicemode_files=not getattr(args, "no_voicemode_env", False),
                         preset=getattr(args, "preset", None), overrides=overrides)


@contextlib.contextmanager
def endpoint_for(settings: Settings) -> Iterator[str]:
    """The endpoint URL to use, starting the embedded server when none is configured."""
    if not settings.uses_local_server:
        yield settings.base_url
        return
    from ..server.runner import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.base_url
