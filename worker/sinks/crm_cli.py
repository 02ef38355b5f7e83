"""``loyalty-relay sinks add --store … hubspot|klaviyo``: subscribe a CRM to a store's changes.

Both commands are subcommands of the ``sinks add`` group (which parses the store
and the rules into a ``Target``) and store the config the sink validates, like
``add_webhook``. Credentials may come from the environment (``HUBSPOT_TOKEN``,
``KLAVIYO_API_KEY``) so they stay out of shell history.
"""

from __future__ import annotations

from typing import Any

import click

from worker.cli.kit import Target, add_sink, secret_option
from worker.sinks import get_sink
from worker.sinks.hubspot import DEFAULT_API_BASE as HUBSPOT_API_BASE
from worker.sinks.klaviyo import DEFAULT_API_BASE as KLAVIYO_API_BASE
from worker.sinks.klaviyo import DEFAULT_REVISION


@click.command("hubspot")
@secret_option("--token", envvar="HUBSPOT_TOKEN", required=True, help="Private app access token.")
@click.option(
    "--create-missing/--no-create-missing",
    default=False,
    show_default=True,
    help="Create a contact for a customer HubSpot does not know (else the delivery is skipped).",
)
@click.option("--api-base", default=HUBSPOT_API_BASE, show_default=True)
@click.pass_obj
def add_hubspot(target: Target, token: str, create_missing: bool, api_base: str) -> None:
    """Keep loyalty_relay_* properties on HubSpot contacts (run `hubspot setup` next)."""
    config = {"token": token, "create_missing": create_missing, "api_base": api_base}
    add_sink(target, "hubspot", _validated("hubspot", config))
    click.echo(f"next: loyalty-relay hubspot setup --store {target.platform}:{target.external_id}")


@click.command("klaviyo")
@secret_option("--api-key", envvar="KLAVIYO_API_KEY", required=True, help="Private API key.")
@click.option("--revision", default=DEFAULT_REVISION, show_default=True, help="API revision.")
@click.option("--api-base", default=KLAVIYO_API_BASE, show_default=True)
@click.pass_obj
def add_klaviyo(target: Target, api_key: str, revision: str, api_base: str) -> None:
    """Keep loyalty_relay_* custom properties on Klaviyo profiles."""
    config = {"api_key": api_key, "revision": revision, "api_base": api_base}
    add_sink(target, "klaviyo", _validated("klaviyo", config))


def _validated(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The sink's own validation, as a usage error (its messages never repeat a value)."""
    try:
        return get_sink(kind).validate_config(config)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
