"""The engine is headless: importing it must not pull in the TUI (textual) or the CLI."""

import subprocess
import sys

import pytest

MODULES = ["workbench.engine", "workbench.engine.player", "workbench.engine.settings", "workbench.engine.sinks",
           "workbench.engine.decoders", "workbench.engine.buffer", "workbench.engine.source",
           "workbench.engine.metrics", "workbench.engine.envfile"]


@pytest.mark.parametrize("module", MODULES)
def test_engine_module_imports_no_ui(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'workbench.tui',"
        " 'workbench.cli', 'textual_plotext', 'plotext')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"
