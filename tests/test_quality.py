"""The checks CI keeps: ruff (E, F, I, B), mypy on workbench/, and the import-linter contracts (the layers
and no circles). Each runs as its own tool would from the command line, configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: it is in the dev extras (./test.sh installs them)")
        return found
    return str(path)


def check(*argv: str) -> None:
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_ruff() -> None:
    check(tool("ruff"), "check", "workbench", "tests", "scripts")


def test_mypy() -> None:
    check(tool("mypy"))


def test_import_contracts() -> None:
    check(tool("lint-imports"), "--no-cache")
