"""The embedded default (SQLite database, SQLite broker, no Redis or
PostgreSQL), exercised through ``loyalty-relay demo``, which runs
``loyalty-relay run`` in a child process exactly as the README's first command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_the_whole_path_embedded(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo"],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    assert "running embedded" in output and "(SQLite, no Redis)" in output
    platforms = output.count("\n── ") - 1  # one section per platform, then the epilogue
    verified = output.count("signature verified: True")
    assert platforms >= 2 and verified == 2 * platforms
    assert output.count("balance 0 → ") == platforms and "200 duplicate" in output
    assert f"sink received {verified} signed deliveries, 0 duplicates" in output
