"""Overview, Stores and Sinks (with pause/resume)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, flash, render_template, request
from werkzeug.wrappers.response import Response

from web.ops import forms
from worker.ops import overview, queues, sinks, stores
from worker.platforms import PLATFORM_NAMES, build_platform
from worker.runtime import Runtime

PAGE_SIZE = 50


def register(blueprint: Blueprint, runtime: Runtime) -> None:
    quotas = _quotas(runtime)

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
        with runtime.transaction() as session:
            changed = sinks.pause(session, sink_id, "paused from the dashboard")
        flash(f"sink {sink_id} paused" if changed else f"sink {sink_id} was already paused")
        return forms.redirect_back("ops.sinks")

    @blueprint.post("/sinks/<int:sink_id>/resume")
    def resume_sink(sink_id: int) -> Response:
        with runtime.transaction() as session:
            changed = sinks.resume(session, sink_id)
        flash(f"sink {sink_id} resumed" if changed else f"sink {sink_id} was not paused")
        return forms.redirect_back("ops.sinks")


def _cursor(name: str) -> int:
    """An id cursor from the query string; junk reads as the first page."""
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() else 0


def _quotas(runtime: Runtime) -> Mapping[str, Mapping[str, tuple[int, float]]]:
    return {name: build_platform(name, runtime.settings).quotas for name in PLATFORM_NAMES}
