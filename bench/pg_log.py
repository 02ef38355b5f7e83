"""Where PostgreSQL's time goes, read from its own log of statement durations.

``bench/worker.py --pg-log FILE`` sets ``log_min_duration_statement = 0`` on the
relay's bench database only (``ALTER DATABASE``, so the server's other databases log
as before and the setting goes with the database), then reads the part of the
server's log ``FILE`` that the run wrote (on Debian
``/var/log/postgresql/postgresql-15-main.log``; the lines must name the database, as
Debian's ``log_line_prefix`` ``%m [%p] %q%u@%d`` does). Alone:

    python bench/pg_log.py LOGFILE --database NAME [--refreshes 2000]

sums a whole log. A statement's time here is the server's wall time for it, its
parse, bind and execute steps together: its CPU, and for a ``COMMIT`` (or a
statement that commits by itself) the wait for its WAL to reach the disk.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# "… user@database LOG:  duration: 0.123 ms  execute <unnamed>: SELECT …"
_LINE = re.compile(
    r"@(?P<database>\S+) LOG:  duration: (?P<ms>[0-9.]+) ms  "
    r"(?:statement|parse|bind|execute)(?: [^:]*)?: (?P<sql>.*)"
)
_WORDS = 8  # a statement is named by its first words, its values being parameters


@dataclass
class Spent:
    """Milliseconds and log lines by statement (its first words)."""

    ms: Counter[str] = field(default_factory=Counter)
    lines: Counter[str] = field(default_factory=Counter)

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())

    def add(self, sql: str, ms: float) -> None:
        name = " ".join(sql.split()[:_WORDS])
        self.ms[name] += ms
        self.lines[name] += 1


def offset(path: Path) -> int:
    """Where the log ends now: a run's part of it starts here."""
    return path.stat().st_size


def read(path: Path, database: str, start: int = 0) -> Spent:
    """The durations ``database``'s sessions logged from byte ``start`` on."""
    spent = Spent()
    with path.open("rb") as log:
        log.seek(start)
        for raw in log:
            match = _LINE.search(raw.decode("utf-8", "replace"))
            if match and match["database"] == database:
                spent.add(match["sql"], float(match["ms"]))
    return spent


def summary(spent: Spent, refreshes: int, top: int = 6) -> str:
    """One line: PostgreSQL's ms per refresh in all, and its biggest statements."""
    per = max(refreshes, 1)
    parts = [
        f"{ms / per:.2f} {name[:48]!r} ({spent.lines[name]} lines)"
        for name, ms in spent.ms.most_common(top)
    ]
    return f"PostgreSQL ms per refresh {spent.total_ms / per:.2f}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--database", required=True)
    parser.add_argument("--refreshes", type=int, default=2000)
    parser.add_argument("--top", type=int, default=12)
    options = parser.parse_args(argv)
    if not options.log.is_file():
        parser.error(f"{options.log}: no such file")
    print(summary(read(options.log, options.database), options.refreshes, options.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
