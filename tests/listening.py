"""SQLAlchemy engine events for the length of a ``with``: what the tests that count
or read a piece of code's statements listen with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def listening(engine: Engine, **listeners: Callable[..., Any]) -> Iterator[None]:
    """``listening(engine, before_cursor_execute=f, commit=g)``: each listens, then
    is removed, whatever the body raised."""
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)
