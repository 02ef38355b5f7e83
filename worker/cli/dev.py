"""Developer tools: ``sandbox`` (local platform APIs), ``trigger`` (send a
correctly authenticated sample webhook, think ``stripe trigger``) and
``demo`` (all of it).

The stand-ins for the outside world (``worker.sandbox``) are imported inside the
commands that serve them, never at the top: every command shares this module's
import with ``migrate`` and ``run``, and production processes load no fake apps.
"""

from __future__ import annotations

import os

import click
import httpx
from sqlalchemy.exc import SQLAlchemyError

from worker.cli.kit import open_runtime
from worker.config import ConfigError
from worker.crypto import CredentialsError
from worker.platforms import PLATFORM_NAMES, build_platform, samples_module
from worker.stores import find_store


@click.command()
@click.argument("platform", type=click.Choice(PLATFORM_NAMES))
@click.argument("event")
@click.option("--store", "--merchant", "store_id", required=True, help="The store's id there.")
@click.option("--customer", help="Customer id (order and customer events).")
@click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="Receiver base URL."
)
@click.option("--secret", help="Signing secret or credentials (default: the stored ones).")
def trigger(
    platform: str, event: str, store_id: str, customer: str | None, url: str, secret: str | None
) -> None:
    """Send one correctly authenticated sample webhook to a running receiver."""
    samples = samples_module(platform)
    if event not in samples.EVENT_NAMES:
        raise click.BadParameter(
            f"choose from {', '.join(samples.EVENT_NAMES)}", param_hint="EVENT"
        )
    if event.startswith(("order", "customer", "loyalty", "refund")) and not customer:
        raise click.UsageError(f"{event} needs --customer")
    secret = secret or _stored_secret(platform, store_id)
    try:
        delivery = samples.build(event, store_id, customer, secret)
    except ValueError as exc:  # e.g. a secret that is not whsec_ + base64
        raise click.BadParameter(str(exc), param_hint="--secret") from None
    target = url.rstrip("/") + delivery.path
    try:
        response = httpx.post(target, content=delivery.body, headers=delivery.headers, timeout=10)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not reach {target}: {exc}") from None
    click.echo(f"{event} → {target}: {response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        raise SystemExit(1)


def _stored_secret(platform: str, store_id: str) -> str:
    try:
        runtime = open_runtime()
        receiver = build_platform(platform, runtime.settings)
        with runtime.sessions() as session:
            store = find_store(session, receiver.store_platform, store_id)
            credentials = runtime.cipher.open(store.credentials) if store else {}
    except (ConfigError, CredentialsError, SQLAlchemyError, click.ClickException) as exc:
        raise click.UsageError(f"pass --secret: the stored one is unreadable ({exc})") from None
    secret: str | None = samples_module(platform).default_secret(runtime.settings, credentials)
    if not secret:
        raise click.UsageError(f"no secret known for {platform}:{store_id}: pass --secret")
    return secret


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve local Salla, Zid and Appstle APIs (ports PORT, PORT+1, …) until Ctrl-C."""
    from worker.sandbox.serve import serve_sandbox

    serve_sandbox(host, port, echo=click.echo)


@click.command()
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Receiver port (0: any).")
@click.option("--keep", is_flag=True, help="Keep the demo's data folder afterwards.")
def demo(port: int, keep: bool) -> None:
    """Start everything embedded, register sandbox stores and a capture sink,
    fire webhooks and print what reached the sink."""
    from worker.sandbox.demo import run_demo

    os.environ.pop("DATABASE_URL", None)
    run_demo(port=port, keep=keep, echo=click.echo)
