"""Imported first by every benchmark script: ``import worker`` must find the project's
package, not ``bench/worker.py`` (the cost-per-refresh benchmark), although Python puts
the script's folder first on ``sys.path``. The project's root goes first instead."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH), str(BENCH)]
