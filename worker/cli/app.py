"""``loyalty-relay``: run the service, manage stores and sinks, and the
developer tools (sandbox, trigger, demo).

Every command reads the same environment as the service (``DATABASE_URL``,
``RELAY_DATA_DIR``, ``RELAY_SECRET_KEY``…). Bad input is a one-line error and
exit status 2; a failure below the command (database, configuration, stored
credentials) is a one-line error and exit status 1; never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from worker.cli.dashboard import ops_password
from worker.cli.dev import demo, sandbox, trigger
from worker.cli.kit import database_error, open_runtime
from worker.cli.ops_deliveries import deliveries
from worker.cli.ops_inbox import inbox, refresh
from worker.cli.ops_queues import queues
from worker.cli.privacy import privacy
from worker.cli.serve import run, sweep
from worker.cli.sinks import add as add_sink
from worker.cli.sinks import sinks
from worker.cli.stores import add as add_store
from worker.cli.stores import stores
from worker.config import ConfigError
from worker.crypto import CredentialsError, generate_key
from worker.errors import RelayError
from worker.platforms.shopify.cli import add_shopify
from worker.platforms.zid.cli import add_zid, zid
from worker.signing import new_secret
from worker.sinks.crm_cli import add_hubspot, add_klaviyo
from worker.sinks.email_cli import add_email, preview
from worker.sinks.hubspot_cli import hubspot

log = logging.getLogger(__name__)


class RelayGroup(click.Group):
    """The command tree, with failures from below the commands as one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, CredentialsError) as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise database_error(exc) from None
        except RelayError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=RelayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-relay")
def main() -> None:
    """Keeps merchants' loyalty points moving."""


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    runtime = open_runtime(migrate=True)
    click.echo(f"database is at the latest schema ({runtime.engine.url.get_backend_name()})")


@main.command()
@click.option("--whsec", is_flag=True, help="A Standard Webhooks secret for a sink instead.")
def keygen(whsec: bool) -> None:
    """Print a new RELAY_SECRET_KEY (a Fernet key), or with --whsec a sink secret."""
    click.echo(new_secret() if whsec else generate_key())


for command in (run, sweep, stores, sinks, sandbox, trigger, demo, zid, hubspot, preview, privacy):
    main.add_command(command)
for ops_command in (queues, deliveries, inbox, refresh, ops_password):
    main.add_command(ops_command)
for sink_command in (add_hubspot, add_klaviyo, add_email):
    add_sink.add_command(sink_command)
add_store.add_command(add_zid, "zid")
add_store.add_command(add_shopify, "shopify")
