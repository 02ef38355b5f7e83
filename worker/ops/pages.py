"""Keyset pagination for the ops listings (CLI and dashboard).

A page is read *after* the last row of the previous one, never with OFFSET:
the cursor is that row's sort key (base64 of a JSON list, opaque to callers),
and the next page is ``WHERE (sort key) < (cursor) ORDER BY sort key DESC
LIMIT n`` — one index range scan however deep the operator pages. No page
counts the table (``COUNT(*)`` over millions of rows on every click).

Listings without a status filter read each status's range of the same
``(status, time, id)`` index and merge them (``newest``): at most one bounded
range scan per status, instead of a second index per filter combination on
tables the pipeline writes to all day.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, select, tuple_, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from worker.ops import OpsError

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class BadCursor(OpsError):
    """A cursor this listing did not hand out (edited, truncated, from another listing)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None  # None on the last page


def clamp(limit: int) -> int:
    """Between 1 and ``MAX_LIMIT``: a page is always bounded."""
    return max(1, min(int(limit), MAX_LIMIT))


def encode_cursor(moment: datetime, row_id: int | str) -> str:
    raw = json.dumps([moment.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type[int] | type[str]) -> tuple[datetime, Any]:
    """The sort key a cursor carries; ``BadCursor`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        when = datetime.fromisoformat(moment)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor(f"{cursor[:40]!r} is not a cursor from this listing") from None
    if not isinstance(row_id, id_type) or when.tzinfo is None:
        raise BadCursor(f"{cursor[:40]!r} is not a cursor from this listing")
    return when, row_id


@dataclass(frozen=True)
class Keyset:
    """A listing's sort key: a time column and the primary key, newest first."""

    time: InstrumentedAttribute[Any]
    key: InstrumentedAttribute[Any]
    id_type: type[int] | type[str]

    def after(self, cursor: str | None) -> list[ColumnElement[bool]]:
        """The condition for rows after ``cursor`` (a row comparison the index serves)."""
        if cursor is None:
            return []
        moment, row_id = decode_cursor(cursor, self.id_type)
        return [tuple_(self.time, self.key) < tuple_(moment, row_id)]

    def ordered(self, query: Select[Any], limit: int) -> Select[Any]:
        return query.order_by(self.time.desc(), self.key.desc()).limit(limit)


def newest(
    keyset: Keyset,
    partitions: Sequence[Sequence[ColumnElement[bool]]],
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
) -> Select[Any]:
    """The keys of the ``limit`` newest rows over ``partitions`` (each a set of equalities
    leading an index, e.g. one status, or one sink and one status): one range scan each."""
    parts = [
        keyset.ordered(
            select(keyset.key.label("key"), keyset.time.label("at")).where(*equal, *conditions),
            limit,
        ).subquery()
        for equal in partitions
    ]
    merged = union_all(*(select(part.c.key, part.c.at) for part in parts)).subquery()
    return select(merged.c.key).order_by(merged.c.at.desc(), merged.c.key.desc()).limit(limit)


def partitions(*axes: Sequence[ColumnElement[bool]]) -> list[tuple[ColumnElement[bool], ...]]:
    """Every combination of one condition per axis (statuses × sinks …)."""
    return list(itertools.product(*axes))


def listing(
    session: Session,
    keyset: Keyset,
    parts: Sequence[Sequence[ColumnElement[bool]]],
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
    query: Select[*tuple[Any, ...]],
    item: Callable[[Any], T],
) -> Page[T]:
    """One page: the keys of the newest ``limit + 1`` rows (``newest``), then ``query``
    for those rows, each made an ``item`` — whose attributes are named after the
    keyset's columns, so the cursor is read from the last one."""
    if not parts:  # e.g. a store without sinks: nothing can match
        return Page((), None)
    keys = newest(keyset, parts, conditions, clamp(limit) + 1)
    found = session.execute(
        query.where(keyset.key.in_(keys)).order_by(keyset.time.desc(), keyset.key.desc())
    )
    items = [item(row) for row in found]
    shown = tuple(items[: clamp(limit)])
    if len(items) <= len(shown) or not shown:
        return Page(shown, None)
    last = shown[-1]
    return Page(shown, encode_cursor(getattr(last, keyset.time.key), getattr(last, keyset.key.key)))


def chosen(status: str | None, statuses: Sequence[str], what: str) -> Sequence[str]:
    """The statuses a listing reads: the one asked for (if it is one of ``statuses``)
    or all of them."""
    if status is None:
        return statuses
    if status not in statuses:
        raise OpsError(f"unknown {what} status {status!r} (one of {', '.join(statuses)})")
    return (status,)
