"""`workbench serve`: the embedded OpenAI-compatible TTS server in the foreground."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from .common import Handler, UserError


def register(sub: Any) -> dict[str, Handler]:
    serve = sub.add_parser("serve", help="run the embedded OpenAI-compatible TTS server",
                           description="Serve /v1/audio/speech (espeak-ng speech or a test signal) in all six "
                           "formats, paced like a local neural TTS.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8880, help="port (default 8880, as Kokoro-FastAPI)")
    serve.add_argument("--api-key", help="require this bearer key on every route (visible in 'ps': prefer "
                       "--api-key-file or WORKBENCH_SERVER_API_KEY)")
    serve.add_argument("--api-key-file", type=Path, metavar="FILE", help="require the bearer key in FILE (first line)")
    serve.add_argument("--test-knobs", action="store_true",
                       help="let requests set the server's realism and fault knobs (query or X-Workbench-Knobs): "
                       "for tests and benchmarks, never on a shared server")
    serve.add_argument("--ttfb-ms", type=float, help="time to first byte (default 150)")
    serve.add_argument("--pace", type=float, help="wall seconds per second of audio (default 0.2 = 5x real time)")
    serve.add_argument("--flush-ms", type=float, help="send bytes in bursts this far apart (default 40)")
    return {"serve": cmd_serve}


def cmd_serve(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ..server.app import Knobs
    from ..server.runner import serve_forever

    knobs = Knobs()
    for flag, attr in (("ttfb_ms", "ttfb_ms"), ("pace", "pace"), ("flush_ms", "flush_ms")):
        value = getattr(args, flag)
        if value is not None:
            if value < 0:
                raise UserError(f"--{flag.replace('_', '-')} must not be negative")
            setattr(knobs, attr, value)
    api_key = _server_api_key(args)
    if not _is_loopback(args.host) and api_key is None:
        print(f"workbench: warning: serving on {args.host} with no API key: anyone who can reach this machine "
              "can use it (set WORKBENCH_SERVER_API_KEY or --api-key-file)", file=stderr)
    if args.test_knobs:
        print("workbench: test knobs are on: any client can make this server stall, drop or corrupt replies",
              file=stderr)
    print(f"embedded TTS server on http://{args.host}:{args.port}/v1 (Ctrl-C stops it)", file=stderr)
    try:
        serve_forever(args.host, args.port, knobs, api_key=api_key, test_knobs=args.test_knobs)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


SERVER_KEY_ENV = "WORKBENCH_SERVER_API_KEY"


def _server_api_key(args: argparse.Namespace) -> str | None:
    """The key `serve` requires: --api-key, else --api-key-file, else WORKBENCH_SERVER_API_KEY."""
    if args.api_key is not None and args.api_key_file is not None:
        raise UserError("give --api-key or --api-key-file, not both")
    key = args.api_key
    if args.api_key_file is not None:
        try:
            lines = args.api_key_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read --api-key-file {args.api_key_file}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
        key = lines[0].strip() if lines else ""
    elif key is None:
        key = os.environ.get(SERVER_KEY_ENV)
    if key is None:
        return None
    key = key.strip()
    if not key or any(not "!" <= c <= "~" for c in key):
        raise UserError("the server's API key must be printable ASCII without spaces, and not empty")
    return key


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
