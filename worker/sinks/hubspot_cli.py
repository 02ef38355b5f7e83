"""``loyalty-relay hubspot setup``: create the property group and the contact
properties a HubSpot sink writes, where they are missing.

HubSpot refuses to set a property that does not exist, so this runs once per
portal before the first delivery. It is idempotent: each definition is looked up
first (404 → create) and a 409 on create means someone made it meanwhile.

# Reference: HubSpot CRM properties v3 (``GET /crm/v3/properties/contacts/{name}``,
# ``POST /crm/v3/properties/contacts``, ``GET|POST /crm/v3/properties/contacts/groups``)
# (https://developers.hubspot.com/docs/api/crm/properties: custom properties must exist first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from sqlalchemy import select

from worker.cli.kit import open_runtime, parse_store_key
from worker.errors import RelayError
from worker.quota import DatabaseBudget
from worker.runtime import Runtime
from worker.sinks.base import SinkContext
from worker.sinks.crm import GROUP_LABEL, GROUP_NAME, PROPERTIES, CrmProperty
from worker.sinks.hubspot import HubSpotSink
from worker.storage.models import Sink
from worker.stores import find_store

GROUPS = "/crm/v3/properties/contacts/groups"
PROPERTY_DEFINITIONS = "/crm/v3/properties/contacts"


@dataclass(frozen=True)
class Definition:
    """One thing HubSpot must have: where to look for it, and how to create it."""

    what: str  # "group loyalty_relay", "property loyalty_relay_tier"
    lookup: str
    create: str
    body: dict[str, Any]


@click.group()
def hubspot() -> None:
    """HubSpot sinks: prepare the portal."""


@hubspot.command()
@click.option("--sink", "sink_id", type=int, help="The hubspot sink's id (see `sinks list`).")
@click.option("--store", "store_key", help="Or the store whose (one) hubspot sink to use.")
def setup(sink_id: int | None, store_key: str | None) -> None:
    """Create the loyalty_relay property group and contact properties if missing (re-runnable)."""
    runtime = open_runtime()
    config = _sink_config(runtime, sink_id, store_key)
    try:
        context = SinkContext(runtime.http, DatabaseBudget(runtime.transaction), runtime.settings)
        sink = HubSpotSink(config, context)
        for definition in definitions():
            click.echo(f"{definition.what}: {ensure(sink, definition)}")
    except RelayError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def definitions() -> list[Definition]:
    """The group first: HubSpot refuses a property whose group does not exist."""
    group = {"name": GROUP_NAME, "label": GROUP_LABEL, "displayOrder": -1}
    found = [Definition(f"group {GROUP_NAME}", f"{GROUPS}/{GROUP_NAME}", GROUPS, group)]
    for spec in PROPERTIES:
        lookup = f"{PROPERTY_DEFINITIONS}/{spec.name}"
        found.append(
            Definition(f"property {spec.name}", lookup, PROPERTY_DEFINITIONS, property_body(spec))
        )
    return found


def property_body(spec: CrmProperty) -> dict[str, Any]:
    return {
        "name": spec.name,
        "label": spec.label,
        "description": spec.description,
        "groupName": GROUP_NAME,
        "type": spec.type,
        "fieldType": spec.field_type,
    }


def ensure(sink: HubSpotSink, definition: Definition) -> str:
    """``found`` or ``created``; any other answer raises the sink's usual error."""
    # Reference: GET /crm/v3/properties/contacts[/groups]/{name} (HubSpot CRM properties v3)
    looked_up = sink.request("GET", definition.lookup)
    if looked_up.status_code != 404:
        sink.check(looked_up)
        return "found"
    # Reference: POST /crm/v3/properties/contacts[/groups] (HubSpot CRM properties v3)
    created = sink.request("POST", definition.create, definition.body)
    if created.status_code == 409:  # made by someone else since our lookup
        return "found"
    sink.check(created)
    return "created"


def _sink_config(runtime: Runtime, sink_id: int | None, store_key: str | None) -> dict[str, Any]:
    """The chosen hubspot sink's decrypted config; a clear error for any wrong choice."""
    if (sink_id is None) == (store_key is None):
        raise click.UsageError("give either --sink ID or --store PLATFORM:ID")
    with runtime.sessions() as session:
        query = select(Sink).where(Sink.kind == "hubspot")
        if sink_id is not None:
            query = query.where(Sink.id == sink_id)
        else:
            store = find_store(session, *parse_store_key(store_key or ""))
            if store is None:
                raise click.ClickException(f"no store {store_key}: add it first")
            query = query.where(Sink.store_id == store.id)
        rows = list(session.scalars(query.order_by(Sink.id)))
    if len(rows) != 1:
        found = ", ".join(str(row.id) for row in rows) or "none"
        raise click.ClickException(f"need exactly one hubspot sink, found: {found} (use --sink)")
    config: dict[str, Any] = runtime.cipher.open(rows[0].config)
    return config
