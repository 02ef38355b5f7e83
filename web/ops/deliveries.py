"""Deliveries: a filtered, keyset-paged list; a detail page with the masked
payload and every attempt; retry, retry-all-matching and discard.

The actions are the query layer's conditional updates (``worker.ops.deliveries``):
a retry moves only dead or retrying rows, so a delivered one is never resent,
and the ids it moved are enqueued after the commit as the sweeper would. A
broker that is down loses nothing: the rows are pending and due, and the
sweeper sends them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, abort, flash, render_template, request
from sqlalchemy.orm import Session
from werkzeug.wrappers.response import Response

from web.ops import broker, forms
from web.ops.paging import current_cursor
from worker.ops import OpsError
from worker.ops import deliveries as queries
from worker.pipeline.states import Due
from worker.runtime import Runtime

log = logging.getLogger(__name__)
FILTERS = ("status", "sink", "store", "since", "limit")


def register(blueprint: Blueprint, runtime: Runtime) -> None:
    enqueue = broker.enqueuer(runtime)

    @blueprint.get("/deliveries", endpoint="deliveries")
    def listing() -> str:
        filters = forms.filters(FILTERS)
        query = _query(filters)
        with runtime.sessions() as session:
            page = forms.call_ops(
                lambda: queries.list_deliveries(
                    session, **query, cursor=current_cursor(), limit=forms.page_size(filters)
                )
            )
        return forms.listing("ops/deliveries.html", page, filters, queries.STATUSES)

    @blueprint.get("/deliveries/<delivery_id>", endpoint="delivery")
    def detail(delivery_id: str) -> str:
        with runtime.sessions() as session:
            found = forms.call_ops(lambda: queries.show_delivery(session, delivery_id))
        payload = json.dumps(found.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return render_template("ops/delivery.html", detail=found, payload=payload)

    @blueprint.post("/deliveries/<delivery_id>/retry", endpoint="retry_delivery")
    def retry(delivery_id: str) -> Response:
        with runtime.transaction() as session:
            moved = queries.retry(session, [delivery_id])
        flash(_queued(enqueue, moved) if moved else f"{delivery_id} is not dead or retrying")
        return forms.redirect_back("ops.deliveries")

    @blueprint.post("/deliveries/retry", endpoint="retry_matching")
    def retry_matching() -> Response:
        filters = {name: request.form.get(name, "") for name in FILTERS if name != "limit"}
        with runtime.transaction() as session:
            moved = forms.call_ops(lambda: _retry_matching(session, _query(filters)))
        flash(_queued(enqueue, moved) if moved else "no delivery matched")
        return forms.redirect_back("ops.deliveries")

    @blueprint.post("/deliveries/<delivery_id>/discard", endpoint="discard_delivery")
    def discard(delivery_id: str) -> Response:
        with runtime.transaction() as session:
            moved = queries.discard(session, [delivery_id])
        flash(f"{delivery_id} discarded" if moved else f"{delivery_id} was already sent or done")
        return forms.redirect_back("ops.deliveries")


def _query(filters: dict[str, str]) -> dict[str, Any]:
    """Filters as the query layer takes them; junk is a 400 naming the field."""
    sink = filters.get("sink") or None
    if sink is not None and not sink.isdigit():
        abort(400, f"sink must be a sink id (a number), got {sink[:20]!r}")
    return {
        "status": filters.get("status") or None,
        "sink_id": int(sink) if sink else None,
        "store": filters.get("store") or None,
        "since": forms.since(filters.get("since")),
    }


def _retry_matching(session: Session, query: dict[str, Any]) -> list[str]:
    """One batch of the dead (or retrying) rows matching status, sink and time, as
    ``deliveries retry --status`` takes them (the page offers it without a store
    filter, or with a sink, so that it never moves more than the list shows)."""
    if query["store"] is not None and query["sink_id"] is None:
        raise OpsError("retry-all by store: choose one of its sinks")
    return list(
        queries.retry_matching(
            session, query["status"] or "dead", sink_id=query["sink_id"], since=query["since"]
        )
    )


def _queued(enqueue: broker.Enqueue, moved: list[str]) -> str:
    what = moved[0] if len(moved) == 1 else f"{len(moved)} deliveries"
    return broker.queued(enqueue, [Due(delivery_id) for delivery_id in moved], what)
