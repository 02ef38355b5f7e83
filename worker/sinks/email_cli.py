"""Commands for the email sink: ``sinks add … email`` and ``preview``.

``preview`` renders a sample with the same code a real delivery uses, so a
merchant sees what customers will get (and checks a template override) before
subscribing anyone.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from worker.cli.kit import Target, add_sink, secret_option
from worker.errors import RelayError
from worker.points import (
    BALANCE_CHANGED,
    EXPIRED,
    EXPIRING_SOON,
    EXPIRY_CHANGED,
    TIER_CHANGED,
    CustomerContact,
    PointsSnapshot,
    change_payload,
)
from worker.sinks import get_sink
from worker.sinks.base import OutboundDelivery, StoreInfo
from worker.sinks.email_render import (
    DIGIT_STYLES,
    LANGUAGES,
    MESSAGES,
    POINTS_EARNED,
    POINTS_EXPIRED,
    POINTS_EXPIRING_SOON,
    POINTS_SPENT,
    TIER_CHANGED_MESSAGE,
    Brand,
    message_context,
    render,
)

PREVIEW_DIR = Path(tempfile.gettempdir()) / "loyalty-relay-preview"
# ``--kind`` takes a change kind (its usual message) or a message's own name.
PREVIEW_KINDS = {
    BALANCE_CHANGED: POINTS_EARNED,
    TIER_CHANGED: TIER_CHANGED_MESSAGE,
    EXPIRING_SOON: POINTS_EXPIRING_SOON,
    EXPIRED: POINTS_EXPIRED,
    **{message: message for message in MESSAGES},
}
# The customer's name, the store's name, the new and the previous tier.
SAMPLE_PEOPLE = {
    "ar": ("سارة", "متجر الريحان", "الذهبي", "الفضي"),
    "en": ("Sara", "Al Rayhan", "Gold", "Silver"),
}
EXISTING_DIR = click.Path(exists=True, file_okay=False, resolve_path=True)
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")  # the email sink's own rule (worker.sinks.email.COLOR)


def _colour(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not COLOUR.fullmatch(value):
        raise click.BadParameter(f"{value[:20]!r} is not a colour like #0f766e")
    return value


@click.command("preview")
@click.option("--kind", required=True, type=click.Choice(list(PREVIEW_KINDS)))
@click.option("--lang", type=click.Choice(LANGUAGES), default="ar", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write.")
@click.option("--digits", type=click.Choice(DIGIT_STYLES), default="latin", show_default=True)
@click.option("--templates-dir", type=EXISTING_DIR, help="Merchant overrides to try out.")
@click.option("--primary-color", default="#0f766e", show_default=True, callback=_colour)
@click.option("--accent-color", default="#d97706", show_default=True, callback=_colour)
def preview(
    kind: str,
    lang: str,
    out: Path | None,
    digits: str,
    templates_dir: str | None,
    primary_color: str,
    accent_color: str,
) -> None:
    """Render a sample customer email to an HTML file and print its path."""
    message = PREVIEW_KINDS[kind]
    delivery = sample_delivery(message, lang)
    brand = Brand(SAMPLE_PEOPLE[lang][1], primary_color.lower(), accent_color.lower(), digits)
    overrides = [Path(templates_dir)] if templates_dir else []
    try:
        rendered = render(message, lang, message_context(delivery, brand), template_dirs=overrides)
    except RelayError as exc:
        raise click.ClickException(str(exc)) from None
    target = out or PREVIEW_DIR / f"{message}.{lang}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(rendered.html, encoding="utf-8")
    target.with_suffix(".txt").write_text(rendered.text, encoding="utf-8")
    click.echo(f"subject: {rendered.subject}")
    click.echo(str(target))


def sample_delivery(message: str, lang: str, now: datetime | None = None) -> OutboundDelivery:
    """A plausible delivery for ``message``: what a real change of that sort carries."""
    now = now or datetime.now(UTC)
    name, store_name, tier, previous_tier = SAMPLE_PEOPLE[lang]
    event_type, before, after = _sample_change(message, now, tier, previous_tier)
    kinds = [event_type, EXPIRY_CHANGED] if message == POINTS_EARNED else [event_type]
    payload = change_payload(
        platform="salla", store="salla:1234509876", customer_id="1257881496", kinds=kinds,
        before=before, after=after, timezone="Asia/Riyadh",
    )  # fmt: skip
    return OutboundDelivery(
        id="msg_preview",
        event_type=event_type,
        payload=payload,
        created_at=now,
        attempt=1,
        store=StoreInfo("salla:1234509876", store_name, "Asia/Riyadh", lang),
        contact=CustomerContact(name=name, locale=lang),
    )


def _sample_change(
    message: str, now: datetime, tier: str, previous_tier: str
) -> tuple[str, PointsSnapshot, PointsSnapshot]:
    def balance(available: int, days: int = 30, tier: str | None = None) -> PointsSnapshot:
        expiry = now + timedelta(days=days)
        return PointsSnapshot(
            Decimal(available), Decimal(720), next_expiry_at=expiry,
            next_expiry_points=Decimal(900), tier=tier,
        )  # fmt: skip

    samples = {
        POINTS_EARNED: (BALANCE_CHANGED, balance(2860, 60), balance(3110)),
        POINTS_SPENT: (BALANCE_CHANGED, balance(3110), balance(2610)),
        POINTS_EXPIRING_SOON: (EXPIRING_SOON, balance(3110, 5), balance(3110, 5)),
        POINTS_EXPIRED: (EXPIRED, balance(3110, -1), balance(3110, -1)),
        TIER_CHANGED_MESSAGE: (
            TIER_CHANGED,
            balance(3110, tier=previous_tier),
            balance(3110, tier=tier),
        ),
    }
    return samples[message]


@click.command("email")
@click.option("--host", required=True, help="SMTP server.")
@click.option("--port", type=int, help="Default: 587 (starttls), 465 (tls), 25 (none).")
@click.option("--security", type=click.Choice(["starttls", "tls", "none"]), default="starttls")
@click.option("--user", help="SMTP user name (with --password).")
@secret_option("--password", envvar="SMTP_PASSWORD", help="SMTP password; stored encrypted.")
@click.option("--from-address", required=True, help="Sender address customers see.")
@click.option("--from-name", help="Sender name (default: the store's name).")
@click.option("--reply-to", help="Where customers' replies go.")
@click.option("--store-name", help="The store's name in emails (default: as registered).")
@click.option("--primary-color", help="Header colour, #rrggbb.")
@click.option("--accent-color", help="Highlight colour, #rrggbb.")
@click.option("--digits", type=click.Choice(DIGIT_STYLES), help="Digits in Arabic emails.")
@click.option(
    "--default-language", type=click.Choice(LANGUAGES), help="If the customer's is unknown."
)
@click.option("--templates-dir", type=EXISTING_DIR, help="Template overrides for this store.")
@click.option("--timeout", type=float, help="Seconds to wait for the SMTP server (default 30).")
@click.pass_obj
def add_email(target: Target, /, **options: Any) -> None:
    """Email customers when their points change (SMTP)."""
    config = {name: value for name, value in options.items() if value is not None}
    try:
        config = get_sink("email").validate_config(config)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    add_sink(target, "email", config)
