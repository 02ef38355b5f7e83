"""The benchmark scripts start: each is run as its README says (``python bench/X.py``),
where Python puts ``bench/`` first on the path and ``bench/worker.py`` could shadow
the ``worker`` package (``bench/project.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if "argparse" in path.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_it_starts_each_benchmark(script: str) -> None:
    ran = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "usage:" in ran.stdout


def test_the_scheduler_benchmark_builds_its_data_on_this_schema() -> None:
    """At a tiny size: its set-based INSERTs must name every column the schema
    requires (a NOT NULL column added later would otherwise break it unnoticed)."""
    command = [sys.executable, str(BENCH / "scale.py"), "--stores", "5", "--customers", "40",
               "--due", "20"]  # fmt: skip
    ran = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "| reminders created | 20 |" in ran.stdout
