"""Overview, Stores and Sinks (with pause/resume)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, flash, g, render_template, request
from werkzeug.wrappers.response import Response

from web.ops import broker, forms
from worker.ops import overview, queues, sinks, stores
from worker.pipeline import holding
from worker.platforms import PLATFORM_NAMES, build_platform
from worker.runtime import Runtime

PAGE_SIZE = 50


def register(blueprint: Blueprint, runtime: Runtime) -> None:
    quotas = _quotas(runtime)
    enqueue = broker.enqueuer(runtime)

    @blueprint.get("/", endpoint="overview")
    def overview_page() -> str:
        with runtime.sessions() as session:
            tables = queues.table_states(session)
            return render_template(
                "ops/overview.html",
                series=overview.series(session),
                counts=overview.counts(session, tables),
                tables=tables,
                queues=queues.broker_queues(runtime, session),
                attention=stores.needing_attention(session),
            )

    @blueprint.get("/stores", endpoint="stores")
    def stores_page() -> str:
        after = _cursor("after")
        with runtime.sessions() as session:
            rows = stores.summaries(session, quotas, after_id=after, limit=PAGE_SIZE)
        return render_template("ops/stores.html", rows=rows, after=after, size=PAGE_SIZE)

    @blueprint.get("/sinks", endpoint="sinks")
    def sinks_page() -> str:
        after = _cursor("after")
        with runtime.sessions() as session:
            rows = sinks.health(session, after_id=after, limit=PAGE_SIZE)
        return render_template("ops/sinks.html", rows=rows, after=after, size=PAGE_SIZE)

    @blueprint.post("/sinks/<int:sink_id>/pause")
    def pause_sink(sink_id: int) -> Response:
        user = g.ops_user or "the ops token"
        if holding.pause_sink(runtime, sink_id, f"paused from the dashboard by {user}"):
            flash(f"sink {sink_id} paused: its deliveries wait until it is resumed")
        else:
            flash(f"sink {sink_id} was already paused (or does not exist)")
        return forms.redirect_back("ops.sinks")

    @blueprint.post("/sinks/<int:sink_id>/resume")
    def resume_sink(sink_id: int) -> Response:
        released = holding.resume_sink(runtime, sink_id)
        if released is None:
            flash(f"sink {sink_id} was not paused")
        else:
            flash(
                broker.queued(
                    enqueue, released, f"sink {sink_id} resumed: {len(released)} waiting deliveries"
                )
            )
        return forms.redirect_back("ops.sinks")


def _cursor(name: str) -> int:
    """An id cursor from the query string; junk reads as the first page."""
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() else 0


def _quotas(runtime: Runtime) -> Mapping[str, Mapping[str, tuple[int, float]]]:
    return {name: build_platform(name, runtime.settings).quotas for name in PLATFORM_NAMES}
