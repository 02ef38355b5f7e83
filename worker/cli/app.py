"""``loyalty-relay``: run the service, manage stores and sinks, and the
developer tools (sandbox, trigger, demo).

Every command reads the same environment as the service (``DATABASE_URL``,
``RELAY_DATA_DIR``, ``RELAY_SECRET_KEY``…). Bad input is a one-line error and
exit status 2, never a traceback.
"""

from __future__ import annotations

import click

from worker.cli.common import open_runtime
from worker.cli.dev import demo, sandbox, trigger
from worker.cli.privacy import privacy
from worker.cli.serve import run, sweep
from worker.cli.sinks import add as add_sink
from worker.cli.sinks import sinks
from worker.cli.stores import add as add_store
from worker.cli.stores import stores
from worker.platforms.shopify.cli import add_shopify
from worker.platforms.zid.cli import add_zid, zid
from worker.sinks.crm_cli import add_hubspot, add_klaviyo
from worker.sinks.email_cli import add_email, preview
from worker.sinks.hubspot_cli import hubspot
from worker.storage.migrate import upgrade


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-relay")
def main() -> None:
    """Keeps merchants' loyalty points moving."""


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    runtime = open_runtime(migrate=False)
    upgrade(runtime.engine)
    click.echo(f"database is at the latest schema ({runtime.engine.url.get_backend_name()})")


for command in (run, sweep, stores, sinks, sandbox, trigger, demo, zid, hubspot, preview, privacy):
    main.add_command(command)
for sink_command in (add_hubspot, add_klaviyo, add_email):
    add_sink.add_command(sink_command)
add_store.add_command(add_zid, "zid")
add_store.add_command(add_shopify, "shopify")
