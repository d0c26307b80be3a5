"""Imported at interpreter start by the `.pth` file `workbench voicemode enable` puts in voicemode's
environment. It costs nothing until voicemode imports `voice_mode.streaming`: then the module is patched
right after it has loaded (`patch.install`). It never raises: a bridge that cannot load leaves voicemode
exactly as it was, and says why once in voicemode's log.

Only the standard library is imported here: the engine is loaded when voicemode's streaming module is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

TARGET = "voice_mode.streaming"


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self.inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        try:
            from workbench.bridge.patch import install

            install(module)
        except Exception as exc:  # voicemode must start whatever happens here
            logging.getLogger("voicemode.workbench_bridge").warning(
                "workbench bridge: not playing through the engine (%s: %s)", type(exc).__name__, exc)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install_hook() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    loaded = sys.modules.get(TARGET)
    if loaded is not None:  # imported before the hook (it never is from a .pth, but be sure)
        try:
            from workbench.bridge.patch import install

            install(loaded)
        except Exception:
            pass


try:
    install_hook()
except Exception:  # never in the way of the interpreter starting
    pass
