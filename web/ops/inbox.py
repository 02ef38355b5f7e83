"""Inbox: recent webhooks by platform, store, event and status; a stored body, masked; replay.

Replay is the query layer's (``worker.ops.inbox.replay``): finished events that
still hold their body go back to pending and the inbox bell rings. Processing
again is safe because an event only asks for a refresh, and a refresh sends
nothing when the points did not move.
"""

from __future__ import annotations

import json

from flask import Blueprint, flash, render_template
from werkzeug.wrappers.response import Response

from web.ops import forms
from web.ops.paging import current_cursor
from worker.ops import inbox as queries
from worker.platforms import REGISTRY
from worker.runtime import Runtime

FILTERS = ("platform", "store", "event", "status", "since", "limit")


def register(blueprint: Blueprint, runtime: Runtime) -> None:
    @blueprint.get("/inbox", endpoint="inbox")
    def listing() -> str:
        filters = forms.filters(FILTERS)
        since = forms.since(filters.get("since"))
        with runtime.sessions() as session:
            page = forms.call_ops(
                lambda: queries.list_events(
                    session,
                    store=filters.get("store"),
                    event=filters.get("event"),
                    platform=filters.get("platform"),
                    status=filters.get("status"),
                    since=since,
                    cursor=current_cursor(),
                    limit=forms.page_size(filters),
                )
            )
        platforms = sorted(REGISTRY)
        return forms.listing("ops/inbox.html", page, filters, queries.STATUSES, platforms=platforms)

    @blueprint.get("/inbox/<int:event_id>", endpoint="inbox_event")
    def detail(event_id: int) -> str:
        with runtime.sessions() as session:
            found = forms.call_ops(lambda: queries.show_event(runtime, session, event_id))
        body = json.dumps(found.body, indent=2, ensure_ascii=False, sort_keys=True)
        headers = json.dumps(found.headers, indent=2, ensure_ascii=False, sort_keys=True)
        return render_template("ops/inbox_event.html", detail=found, body=body, headers=headers)

    @blueprint.post("/inbox/<int:event_id>/replay", endpoint="replay_event")
    def replay(event_id: int) -> Response:
        moved = queries.replay(runtime, [event_id])
        flash(
            f"event {event_id} queued again"
            if moved
            else f"event {event_id} is not finished or holds no body"
        )
        return forms.redirect_back("ops.inbox")
