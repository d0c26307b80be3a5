"""`workbench settings` and `workbench devices`: what is in effect, and where sound can go."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from ..engine.settings import SPECS, format_value
from .common import Handler, UserError, add_settings_options, settings_from_args


def register(sub: Any) -> dict[str, Handler]:
    settings = sub.add_parser("settings", help="show the settings in effect and where each came from")
    add_settings_options(settings)
    settings.add_argument("--json", action="store_true", help="as JSON")
    sub.add_parser("devices", help="list audio output devices")
    cache = sub.add_parser("cache", help="the reply cache: where it is and what it holds (--clear empties it)",
                           description="Replies `workbench play` heard before play from here with no request "
                           "(WORKBENCH_CACHE, WORKBENCH_CACHE_MB).")
    cache.add_argument("--clear", action="store_true", help="remove every stored reply")
    return {"settings": cmd_settings, "devices": cmd_devices, "cache": cmd_cache}


def cmd_cache(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..engine.fetching.cache import ReplyCache

    settings = settings_from_args(args)
    cache = ReplyCache(max_mb=settings.cache_mb)
    if args.clear:
        print(f"removed {cache.clear()} stored replies from {cache.folder}", file=stdout)
        return 0
    entries, size = cache.stats()
    state = "on" if settings.cache else f"off ({settings.origins.get('cache', 'default')})"
    print(f"{cache.folder}: {entries} replies, {size / 1e6:.1f} of {settings.cache_mb:g} MB; the cache is {state}",
          file=stdout)
    return 0


def cmd_settings(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    settings = settings_from_args(args)
    rows = []
    for spec in SPECS:
        value = getattr(settings, spec.attr)
        shown = "(set)" if spec.attr == "api_key" and value else format_value(value) if value is not None else ""
        if spec.attr == "base_urls" and value is None:
            shown = "local (embedded server)"
        rows.append((spec.env, shown, settings.origins.get(spec.attr, "default")))
    if args.json:
        print(json.dumps({env: {"value": v, "from": o} for env, v, o in rows}, indent=2), file=stdout)
        return 0
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    for env, value, origin in rows:
        print(f"{env:<{w1}}  {value:<{w2}}  {origin}", file=stdout)
    return 0


def cmd_devices(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..engine.output.sinks import SinkError, import_sounddevice

    try:
        sd = import_sounddevice()
        devices = sd.query_devices()
    except SinkError as exc:
        raise UserError(str(exc)) from None
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    if not outputs:
        print("no audio output devices; use --sink virtual", file=stdout)
        return 0
    default = sd.default.device[1]
    for d in outputs:
        mark = "*" if d["index"] == default else " "
        print(f"{mark} {d['index']:>3}  {d['name']}  ({int(d['default_samplerate'])} Hz)", file=stdout)
    return 0
