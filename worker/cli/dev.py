"""Developer tools: ``sandbox`` (a local Salla), ``trigger`` (send a correctly
signed sample webhook, think ``stripe trigger``) and ``demo`` (all of it)."""

from __future__ import annotations

import os

import click
import httpx

from worker.platforms.salla import samples
from worker.sandbox.demo import run_demo
from worker.sandbox.serve import serve_sandbox


@click.command()
@click.argument("platform", type=click.Choice(["salla"]))
@click.argument("event", type=click.Choice(samples.EVENT_NAMES))
@click.option("--merchant", required=True, help="Merchant id the event comes from.")
@click.option("--customer", help="Customer id (order and customer events).")
@click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="Receiver base URL."
)
@click.option(
    "--secret", envvar="SALLA_WEBHOOK_SECRET", help="Webhook secret [SALLA_WEBHOOK_SECRET]."
)
@click.option("--strategy", type=click.Choice(["Signature", "Token"]), default="Signature")
def trigger(
    platform: str,
    event: str,
    merchant: str,
    customer: str | None,
    url: str,
    secret: str | None,
    strategy: str,
) -> None:
    """Send one correctly authenticated sample webhook to a running receiver."""
    if not secret:
        raise click.UsageError("a webhook secret is needed: --secret or SALLA_WEBHOOK_SECRET")
    if (event.startswith(("order.", "customer."))) and not customer:
        raise click.UsageError(f"{event} needs --customer")
    body = samples.encode(samples.sample_event(event, merchant, customer))
    headers = samples.signed_headers(body, secret, strategy)
    target = f"{url.rstrip('/')}/webhooks/{platform}"
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not reach {target}: {exc}") from None
    click.echo(f"{event} → {target}: {response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        raise SystemExit(1)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve a local Salla Merchant API (loyalty points, OAuth tokens) until Ctrl-C."""
    serve_sandbox(host, port, echo=click.echo)


@click.command()
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Receiver port (0: any).")
@click.option("--keep", is_flag=True, help="Keep the demo's data folder afterwards.")
def demo(port: int, keep: bool) -> None:
    """Start everything embedded, register a sandbox store and a capture sink,
    fire webhooks and print what reached the sink."""
    os.environ.pop("DATABASE_URL", None)
    run_demo(port=port, keep=keep, echo=click.echo)
