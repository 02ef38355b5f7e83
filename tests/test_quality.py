"""Lint, format and types are part of the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "mypy strict": [sys.executable, "-m", "mypy"],
}


@pytest.mark.parametrize("tool", TOOLS)
def test_it_passes(tool: str) -> None:
    result = subprocess.run(TOOLS[tool], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{tool} failed:\n{result.stdout}\n{result.stderr}"
