"""The relay's Celery app with SQL statements counted: ``celery -A relay_counted worker``.

Used by bench/worker.py only. SQLAlchemy events count every statement sent
(``before_cursor_execute``), every transaction begun (not a statement committed by
itself) and every pool checkout
(each checkout is where a pre-ping, when enabled, costs one more round trip),
and every task run by name (``task:<name>``; for a task given a list of ids, the
ids too, ``items:<name>``: a chunk's size). Each process writes its counts to
``$RELAY_BENCH_COUNTS/<pid>.json`` four times a second; the bench sums the files.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import project  # noqa: F401  (before anything imports worker)
from celery.signals import task_prerun
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from worker.celery_app import app

__all__ = ["app"]

COUNTS: dict[str, int] = {"statements": 0, "transactions": 0, "checkouts": 0}


def _statement(*_: Any) -> None:
    COUNTS["statements"] += 1


def _begin(connection: Any) -> None:
    # A statement on an autocommit connection (``Runtime.statement``) is no transaction.
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        COUNTS["transactions"] += 1


def _checkout(*_: Any) -> None:
    COUNTS["checkouts"] += 1


@task_prerun.connect
def _task(task: Any = None, args: Any = None, **_: Any) -> None:
    name = getattr(task, "name", "?")
    COUNTS[f"task:{name}"] = COUNTS.get(f"task:{name}", 0) + 1
    if args and isinstance(args[0], list):
        COUNTS[f"items:{name}"] = COUNTS.get(f"items:{name}", 0) + len(args[0])


def _write_forever(directory: Path) -> None:
    target = directory / f"{os.getpid()}.json"
    while True:
        target.write_text(json.dumps(COUNTS))
        time.sleep(0.25)


def _start() -> None:
    COUNTS.clear()
    COUNTS.update(statements=0, transactions=0, checkouts=0)
    directory = Path(os.environ["RELAY_BENCH_COUNTS"])
    threading.Thread(target=_write_forever, args=(directory,), daemon=True).start()


event.listen(Engine, "before_cursor_execute", _statement)
event.listen(Engine, "begin", _begin)
event.listen(Pool, "checkout", _checkout)
if os.environ.get("RELAY_BENCH_COUNTS"):
    _start()
    os.register_at_fork(after_in_child=_start)
