"""A points page read without marshmallow, for the shapes Salla's examples show.

``schemas.PointsPageSchema`` is the definition of what a page may hold and the
one source of its error messages; this reader is its fast path. It accepts only
values whose meaning under the schema is plain (an ``int`` or a digits string
for a number, a ``str`` or null for text, an ISO date string…) and builds the
same ``PointsPage``; on anything else it returns None and the caller loads the
page with the schema, which accepts the rest of Salla's variants or says what
is malformed. ``tests/worker/platforms/test_salla_quick.py`` holds the two to
the same answers over generated pages.

Why: a refresh reads two pages of 60 entries; the schema costs about 10 µs per
field, a quarter of a refresh's Python time, for values that are nearly always
already what we keep.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.platforms.identifiers import external_id
from worker.platforms.salla.schemas import (
    ZERO,
    Pagination,
    PointsEntry,
    PointsPage,
    load_points_page,
    wall_clock,
)

_SHORT = 10**18  # an integer within this is an id of ours as it stands (``external_id``)
_NUMBER = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")


class _Unsure(Exception):
    """A value this reader leaves to the schema."""


def load_page(document: Any) -> PointsPage:
    """``schemas.load_points_page``, by the fast path when it can."""
    return read_page(document) or load_points_page(document)


def read_page(document: Any) -> PointsPage | None:
    """The page, or None when the schema must decide."""
    if type(document) is not dict:
        return None
    try:
        _optional_int(document.get("status"))
        success = document.get("success")
        if success is not None and type(success) is not bool:
            return None
        data, pagination = document.get("data"), document.get("pagination")
        if type(data) is not list or type(pagination) is not dict:
            return None
        entries = tuple(_entry(raw) for raw in data)
        return PointsPage(entries=entries, pagination=_pagination(pagination))
    except _Unsure:
        return None


def _entry(raw: Any) -> PointsEntry:
    if type(raw) is not dict or "points" not in raw:
        raise _Unsure
    get = raw.get
    status = get("status")
    if type(status) is not str:
        raise _Unsure
    used = get("used_points")
    return PointsEntry(
        name=_text(get("name")) or "",
        points=_decimal(raw["points"]),
        used_points=ZERO if used is None else _decimal(used) or ZERO,
        status=status,
        created_at=_wall_clock(get("created_at")),
        expiry_date=_wall_clock(get("expiry_date")),
        order_id=_external_id(get("order_id")),
        reference_id=_external_id(get("reference_id")),
        used_at=_date_text(get("used_at")),
        notes=_text(get("notes")),
    )


def _pagination(raw: dict[str, Any]) -> Pagination:
    current, total_pages = raw.get("currentPage"), raw.get("totalPages")
    if type(current) is not int or type(total_pages) is not int or total_pages < 0:
        raise _Unsure
    links = raw.get("links", {})
    if type(links) is not dict:
        raise _Unsure
    next_link, previous_link = links.get("next"), links.get("previous")
    return Pagination(
        current_page=current,
        total_pages=total_pages,
        count=_optional_int(raw.get("count")),
        total=_optional_int(raw.get("total")),
        per_page=_optional_int(raw.get("perPage")),
        next_link=next_link if type(next_link) is str else None,
        previous_link=previous_link if type(previous_link) is str else None,
    )


def _optional_int(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    raise _Unsure


def _decimal(value: Any) -> Decimal:
    if type(value) is int or (type(value) is str and _NUMBER.fullmatch(value)):
        return Decimal(value)
    raise _Unsure


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _Unsure


def _external_id(value: Any) -> str | None:
    if type(value) is int and -_SHORT < value < _SHORT:  # Salla's ids: the usual case
        return str(value)
    if value is None or type(value) in (int, str):
        return external_id(value)
    raise _Unsure


def _date_text(value: Any) -> str | None:
    """A string, a PHP ``Date`` object (its ``date``), or an empty ``{}``/``[]``."""
    if type(value) is dict:
        value = value.get("date")
    if type(value) is str:
        return value.strip() or None
    if value is None or (type(value) is list and not value):
        return None
    raise _Unsure


def _wall_clock(value: Any) -> datetime | None:
    try:
        return wall_clock(_date_text(value))
    except ValueError:
        raise _Unsure from None
