"""Objects of no session made from plain rows (``worker.storage.models.detached``):
the same attributes as the ORM's own objects for the same row, none of a session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import object_session

from tests.factories import add_salla_store, add_webhook_sink
from worker.runtime import Runtime
from worker.storage.models import Base, Sink, Store, detached


def columns(instance: Base) -> dict[str, Any]:
    return {c.key: getattr(instance, c.key) for c in inspect(type(instance)).columns}


def test_a_rows_object_has_the_orms_attributes_and_no_session(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, "https://hooks.example.com/relay", "s3cret")
    for model in (Store, Sink):
        with runtime.sessions() as session:
            loaded = session.scalars(select(model)).one()
            row = session.execute(select(model.__table__)).one()._mapping
            made = detached(model, row)
            assert columns(made) == columns(loaded)
            assert columns(made)["id"] is not None
        state = inspect(made)
        assert state.transient and object_session(made) is None


def test_an_attribute_set_afterwards_is_tracked(runtime: Runtime) -> None:
    add_salla_store(runtime)
    with runtime.sessions() as session:
        made = detached(Store, session.execute(select(Store.__table__)).one()._mapping)
    made.status = "paused"
    assert made.status == "paused"
    assert inspect(made).attrs.status.history.added == ["paused"]
