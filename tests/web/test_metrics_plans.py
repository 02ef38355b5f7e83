"""What a ``/metrics`` scrape and the ``queues`` report ask PostgreSQL can be answered
from indexes, boundedly, whatever the tables hold.

Every statement they send is captured and ``EXPLAIN``-ed with sequential scans
disabled (``enable_seqscan = off``): the planner then takes an index wherever one
can serve, so a ``Seq Scan`` left on a big table means no index can, and the
statement reads the whole table at 10M rows. A count over a big table must read
through a ``LIMIT`` (the cap), an oldest time must be an index's first entry,
and a nested loop's probes count as bounded by its outer side. That such a plan
exists is checked here, on small tables; that the planner takes it at 10M rows,
and what it costs there, is ``bench/metrics_cost.py``'s and ``bench/ops_plans.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.factories import add_salla_store
from tests.listening import listening
from web.health import DatabaseGauges
from worker.ops import queues
from worker.runtime import Runtime

BIG = {"inbox_events", "refresh_jobs", "deliveries", "customer_points"}
Plan = dict[str, Any]


@contextmanager
def captured(runtime: Runtime) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.startswith("EXPLAIN"):  # the estimates of ``queues``: nothing read
            seen.append((statement, params))

    with listening(runtime.engine, before_cursor_execute=remember):
        yield seen


def plans_of(runtime: Runtime, call: Callable[[], object]) -> list[tuple[str, Plan]]:
    with captured(runtime) as seen:
        call()
    assert seen
    found = []
    with runtime.engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, params in seen:
            plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
            document = plan.scalar_one()
            document = document if isinstance(document, list) else json.loads(document)
            found.append((statement, document[0]["Plan"]))
    return found


def nodes(plan: Plan) -> Iterator[Plan]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def loose(plan: Plan) -> set[str]:
    """The big tables ``plan`` reads without a bound: not under a ``LIMIT``, and not
    as the inner side of a nested loop (one probe per outer row) of a bounded outer."""
    if plan["Node Type"] == "Limit":
        return set()
    children = plan.get("Plans", [])
    if plan["Node Type"] == "Nested Loop":
        children = [child for child in children if child["Parent Relationship"] != "Inner"]
    read = {plan["Relation Name"]} if plan.get("Relation Name") in BIG else set()
    return read.union(*(loose(child) for child in children))


def unbounded(plan: Plan) -> list[str]:
    """What in ``plan`` reads a big table whole or without a bound."""
    faults = [
        f"Seq Scan on {node['Relation Name']}"
        for node in nodes(plan)
        if node["Node Type"] == "Seq Scan" and node["Relation Name"] in BIG
    ]
    if loose(plan):
        faults.append(f"rows of {sorted(loose(plan))} read without a LIMIT")
    return faults


@pytest.fixture
def gauged(runtime: Runtime) -> Runtime:
    add_salla_store(runtime)
    return runtime


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_statement_of_a_scrape_is_a_bounded_index_read(gauged: Runtime) -> None:
    plans = plans_of(gauged, lambda: list(DatabaseGauges(gauged).collect()))
    read = {node.get("Relation Name") for _, plan in plans for node in nodes(plan)}
    assert read >= BIG  # the table gauges and the held customers' among them
    faults = {statement: unbounded(plan) for statement, plan in plans if unbounded(plan)}
    assert faults == {}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_statement_of_the_queues_report_is_a_bounded_index_read(gauged: Runtime) -> None:
    def report() -> None:
        with gauged.sessions() as session:
            queues.table_states(session)

    plans = plans_of(gauged, report)
    assert len(plans) > 10
    faults = {statement: unbounded(plan) for statement, plan in plans if unbounded(plan)}
    assert faults == {}
