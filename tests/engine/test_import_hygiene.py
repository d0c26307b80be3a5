"""The engine is headless: importing any of its modules, even what it imports lazily, must not pull in
the TUI (Textual), the CLI, the server or the benchmarks. (The import-linter contracts check the
imports as written; this checks what really gets loaded.)"""

import pkgutil
import subprocess
import sys

import workbench.engine

MODULES = sorted({"workbench.engine", *(m.name for m in pkgutil.walk_packages(workbench.engine.__path__,
                                                                              "workbench.engine."))})
FORBIDDEN = ("textual", "textual_plotext", "plotext", "rich", "workbench.tui", "workbench.cli", "workbench.server",
             "workbench.bench", "workbench.usecases")


def test_every_engine_module_is_covered() -> None:
    assert len(MODULES) >= 20
    assert {"workbench.engine.decoding.framing.sniff", "workbench.engine.fetching.fetch"} <= set(MODULES)


def test_no_engine_module_loads_a_front_end() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the engine loaded {result.stdout.strip()}"
