"""What the list pages share: their filters as typed, the time choices, and the
query layer's refusals turned into a 400 or 404 page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response

from web.ops.paging import links
from worker.ops import NotFound, OpsError
from worker.ops.pages import DEFAULT_LIMIT, Page
from worker.storage.models import utcnow

T = TypeVar("T")
SINCE = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1),
         "7d": timedelta(days=7), "30d": timedelta(days=30)}  # fmt: skip


def filters(names: tuple[str, ...]) -> dict[str, str]:
    """The filters given (as typed), for the form and the pager's links."""
    return {name: value for name in names if (value := request.args.get(name, "").strip())}


def since(choice: str | None) -> datetime | None:
    """The start of a "last N hours" choice; anything else is a 400."""
    if not choice:
        return None
    if choice not in SINCE:
        abort(400, f"since must be one of {', '.join(SINCE)}")
    return utcnow() - SINCE[choice]


def listing(
    template: str,
    page: Page[Any],
    filters: dict[str, str],
    statuses: Sequence[str],
    **choices: Any,
) -> str:
    """A list page: its rows, the pager's links, the filter form as typed (and the
    page's own ``choices`` for its form)."""
    return render_template(
        template,
        page=page,
        links=links(page.next_cursor, filters),
        filters=filters,
        statuses=statuses,
        since_choices=list(SINCE),
        **choices,
    )


def page_size(filters: dict[str, str]) -> int:
    """``limit`` rows a page (the query layer clamps it); junk is a 400."""
    raw = filters.get("limit", "")
    if raw and not raw.isdigit():
        abort(400, f"limit must be a number of rows, got {raw[:20]!r}")
    return int(raw) if raw else DEFAULT_LIMIT


def call_ops(call: Callable[[], T]) -> T:
    """Run a query-layer call; an unknown id is a 404, other bad input a 400."""
    try:
        return call()
    except NotFound as exc:
        abort(404, str(exc))
    except OpsError as exc:
        abort(400, str(exc))


def redirect_back(default: str) -> Response:
    """After an action: back to the page it was taken on (same-site paths only)."""
    target = request.form.get("back", "")
    if not target.startswith("/ops") or target.startswith("//"):
        target = url_for(default)
    return redirect(target, 303)
