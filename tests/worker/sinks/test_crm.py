"""What both CRM sinks share (the properties a change writes, skips, the error mapping)
and the CRM commands (``sinks add … hubspot|klaviyo``, ``hubspot setup``) against a real
database and the HubSpot sandbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select

from tests.conftest import relay_env
from tests.factories import MERCHANT, add_salla_store
from worker.cli.kit import Target
from worker.config import Settings
from worker.errors import PermanentError, TransientError
from worker.points import (
    BALANCE_CHANGED,
    CustomerContact,
    PointsSnapshot,
    change_kinds,
    change_payload,
)
from worker.quota import RateLimited
from worker.runtime import Runtime
from worker.sandbox.hubspot import DEMO_TOKEN, HubSpotSandboxState, create_hubspot_sandbox
from worker.sinks.base import OutboundDelivery, StoreInfo
from worker.sinks.crm import (
    PROPERTIES,
    CrmAnswer,
    contact_email,
    crm_properties,
    raise_for_answer,
    safe_message,
)
from worker.sinks.crm_cli import add_hubspot, add_klaviyo
from worker.sinks.hubspot_cli import hubspot
from worker.sinks.skips import SkippedDelivery
from worker.storage.models import Sink

CREATED_AT = datetime(2026, 11, 23, 9, 20, 11, tzinfo=UTC)
EMAIL = "sara@example.com"


def balance_change(
    email: str | None = EMAIL, *, index: int = 0, excluded: bool = False, **payload: Any
) -> OutboundDelivery:
    """2860 → 3110 points; 900 expire on 2026-11-25T22:30Z, which is the 26th in Riyadh."""
    before = PointsSnapshot(available=Decimal(2860), pending=Decimal(720))
    after = PointsSnapshot(
        available=Decimal(3110),
        pending=Decimal(720),
        next_expiry_at=datetime(2026, 11, 25, 22, 30, tzinfo=UTC),
        next_expiry_points=Decimal(900),
        tier="Gold",
    )
    data = change_payload(
        platform="salla", store=f"salla:{MERCHANT}", customer_id=f"{1257881496 + index}",
        kinds=change_kinds(before, after), before=before, after=after, timezone="Asia/Riyadh",
    )  # fmt: skip
    return OutboundDelivery(
        id=f"msg_crm_{index:04d}",
        event_type=BALANCE_CHANGED,
        payload=data | payload,
        created_at=CREATED_AT,
        attempt=1,
        store=StoreInfo(f"salla:{MERCHANT}", "Demo", "Asia/Riyadh", "ar"),
        contact=CustomerContact(email=email, name="Sara"),
        excluded=excluded,
    )


def test_it_writes_the_absolute_state_of_a_change() -> None:
    assert crm_properties(balance_change()) == {
        "loyalty_relay_points_balance": 3110,
        "loyalty_relay_pending_points": 720,
        "loyalty_relay_next_expiry_date": date(2026, 11, 26),  # the store's day, not UTC's 25th
        "loyalty_relay_next_expiry_points": 900,
        "loyalty_relay_tier": "Gold",
        "loyalty_relay_last_change_at": CREATED_AT,
    }


def test_it_clears_what_the_customer_no_longer_has() -> None:
    delivery = balance_change(tier=None, next_expiry_date=None, next_expiry_points=0)

    properties = crm_properties(delivery)

    assert properties["loyalty_relay_tier"] is None
    assert properties["loyalty_relay_next_expiry_date"] is None
    assert properties["loyalty_relay_next_expiry_points"] == 0


def test_it_leaves_out_what_the_payload_does_not_say() -> None:
    delivery = OutboundDelivery(
        id="msg_partial",
        event_type=BALANCE_CHANGED,
        payload={"balance_after": 12.5},
        created_at=CREATED_AT,
        attempt=1,
    )

    assert crm_properties(delivery) == {
        "loyalty_relay_points_balance": 12.5,
        "loyalty_relay_last_change_at": CREATED_AT,
    }


@pytest.mark.parametrize(
    "junk",
    [{"balance_after": "3110"}, {"pending": True}, {"next_expiry_date": "26/11/2026"}],
)
def test_it_stops_on_a_payload_of_the_wrong_type(junk: dict[str, Any]) -> None:
    with pytest.raises(PermanentError, match="is not a"):
        crm_properties(balance_change(**junk))


def test_it_updates_excluded_customers_too() -> None:
    """The CRM holds what the platform says, even for a customer who cannot earn."""
    excluded = balance_change(excluded=True)

    assert contact_email(excluded) == EMAIL
    assert crm_properties(excluded) == crm_properties(balance_change())


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        (None, "the customer has no email address"),
        ("  ", "the customer has no email address"),
        ("0512345678", "the customer's email address is not usable"),
        ("sara @example.com", "the customer's email address is not usable"),
    ],
)
def test_it_skips_a_customer_without_a_usable_email(email: str | None, reason: str) -> None:
    with pytest.raises(SkippedDelivery) as caught:
        contact_email(balance_change(email))

    assert caught.value.reason == str(caught.value) == reason
    assert isinstance(caught.value, PermanentError)  # until the outbox records it as skipped


@pytest.mark.parametrize("status", [200, 201, 204, 207])
def test_it_accepts_any_2xx(status: int) -> None:
    raise_for_answer("HubSpot", "token", CrmAnswer(status, ""), ())


@pytest.mark.parametrize(
    ("status", "failure", "message"),
    [
        (429, RateLimited, "HubSpot rate limit reached"),
        (408, TransientError, "HubSpot answered 408 Request Timeout"),
        (500, TransientError, "HubSpot answered 500 Internal Server Error"),
        (503, TransientError, "HubSpot answered 503 Service Unavailable"),
        (401, PermanentError, "HubSpot token rejected (401 Unauthorized)"),
        (403, PermanentError, "HubSpot token rejected (403 Forbidden)"),
        (400, PermanentError, "HubSpot answered 400 Bad Request: no such property"),
        (404, PermanentError, "HubSpot answered 404 Not Found: no such property"),
    ],
)
def test_it_turns_a_crm_status_into_a_failure(
    status: int, failure: type[Exception], message: str
) -> None:
    answer = CrmAnswer(status, "no such property", retry_after=12.0)

    with pytest.raises(failure) as caught:
        raise_for_answer("HubSpot", "token", answer, ())

    assert str(caught.value) == message
    if isinstance(caught.value, TransientError):
        assert caught.value.retry_after == 12.0


def test_it_keeps_credentials_and_emails_out_of_a_crm_message() -> None:
    message = "Bearer pat-na1-secret refused for sara@example.com and other@example.org"

    safe = safe_message(message, ("pat-na1-secret", "sara@example.com"))

    assert "pat-na1-secret" not in safe and "example" not in safe
    assert safe.startswith("Bearer [") and "refused for [redacted] and [email]" in safe


def test_it_shortens_a_long_crm_message_to_one_line() -> None:
    safe = safe_message("line one\nline two " + "x" * 500, ())

    assert len(safe) == 200 and safe.endswith("…") and "\n" not in safe


# --- sinks add … hubspot|klaviyo ------------------------------------------------------


@click.group()
@click.pass_context
def sinks_add(ctx: click.Context) -> None:
    """Stands for ``sinks add --store salla:…``, which hands its subcommands a ``Target``."""
    ctx.obj = Target("salla", MERCHANT, [BALANCE_CHANGED])


sinks_add.add_command(add_hubspot)
sinks_add.add_command(add_klaviyo)


@pytest.fixture
def cli(
    runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str
) -> Callable[..., Result]:
    add_salla_store(runtime)
    env = relay_env(tmp_path, settings.database_url, redis_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(sinks_add, list(args), env=env, catch_exceptions=False)


def stored_sinks(runtime: Runtime) -> list[tuple[str, dict[str, Any], list[str]]]:
    with runtime.sessions() as session:
        rows = session.scalars(select(Sink).order_by(Sink.id)).all()
        return [(row.kind, runtime.cipher.open(row.config), row.kinds) for row in rows]


def test_it_adds_a_hubspot_sink(cli: Callable[..., Result], runtime: Runtime) -> None:
    result = cli("hubspot", "--token", "pat-na1-secret", "--create-missing")

    assert result.exit_code == 0, result.output
    assert f"(hubspot) added to salla:{MERCHANT}" in result.output
    assert f"hubspot setup --store salla:{MERCHANT}" in result.output
    assert "pat-na1-secret" not in result.output
    config = {
        "token": "pat-na1-secret",
        "create_missing": True,
        "api_base": "https://api.hubapi.com",
    }
    assert stored_sinks(runtime) == [("hubspot", config, [BALANCE_CHANGED])]


def test_it_adds_a_klaviyo_sink(cli: Callable[..., Result], runtime: Runtime) -> None:
    result = cli("klaviyo", "--api-key", "pk_secret", "--api-base", "https://eu.example.com/")

    assert result.exit_code == 0, result.output
    assert "pk_secret" not in result.output
    config = {
        "api_key": "pk_secret",
        "revision": "2026-07-15",
        "api_base": "https://eu.example.com",
    }
    assert stored_sinks(runtime) == [("klaviyo", config, [BALANCE_CHANGED])]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hubspot", "--token", "pat-na1-secret", "--api-base", "ftp://x"], "api_base"),
        (["hubspot", "--token", " "], "token: must not be empty"),
        (["klaviyo", "--api-key", "pk_secret", "--revision", "latest"], "revision date"),
    ],
)
def test_it_refuses_a_bad_crm_config(
    cli: Callable[..., Result], runtime: Runtime, args: list[str], message: str
) -> None:
    result = cli(*args)

    assert result.exit_code == 2 and message in result.output
    assert "secret" not in result.output
    assert stored_sinks(runtime) == []


# --- hubspot setup ---------------------------------------------------------------------


@pytest.fixture
def setup_cli(
    runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str
) -> Callable[..., Result]:
    env = relay_env(tmp_path, settings.database_url, redis_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(hubspot, ["setup", *args], env=env)


@pytest.fixture
def portal(serve: Callable[[Flask], str], runtime: Runtime) -> tuple[HubSpotSandboxState, int]:
    """A HubSpot portal where setup never ran, and the id of a store's hubspot sink for it."""
    state = HubSpotSandboxState()
    config = {"token": DEMO_TOKEN, "api_base": serve(create_hubspot_sandbox(state))}
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        sink = Sink(store_id=store.id, kind="hubspot", config=runtime.cipher.seal(config), kinds=[])
        session.add(sink)
        session.flush()
        return state, sink.id


SETUP_LINES = ["group loyalty_relay", *(f"property {spec.name}" for spec in PROPERTIES)]


def test_it_sets_up_hubspot_once(
    portal: tuple[HubSpotSandboxState, int], setup_cli: Callable[..., Result]
) -> None:
    state, sink_id = portal

    first = setup_cli("--sink", str(sink_id))
    made = len(state.requests())
    second = setup_cli("--store", f"salla:{MERCHANT}")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.stdout.splitlines() == [f"{line}: created" for line in SETUP_LINES]
    assert second.stdout.splitlines() == [f"{line}: found" for line in SETUP_LINES]
    assert [r.method for r in state.requests()[made:]] == ["GET"] * 7  # nothing created again


def test_it_creates_the_group_and_typed_properties(
    portal: tuple[HubSpotSandboxState, int], setup_cli: Callable[..., Result]
) -> None:
    state, sink_id = portal

    setup_cli("--sink", str(sink_id))

    group, points, *_ = [r.body for r in state.requests() if r.method == "POST"]
    assert group == {
        "name": "loyalty_relay",
        "label": "Loyalty (loyalty-relay)",
        "displayOrder": -1,
    }
    assert points == {
        "name": "loyalty_relay_points_balance",
        "label": "Loyalty points balance",
        "description": "Points the customer can spend now.",
        "groupName": "loyalty_relay",
        "type": "number",
        "fieldType": "number",
    }
    defined = state.schema["properties"]
    assert {name: defined[name]["type"] for name in defined if "loyalty" in name} == {
        "loyalty_relay_points_balance": "number",
        "loyalty_relay_pending_points": "number",
        "loyalty_relay_next_expiry_date": "date",
        "loyalty_relay_next_expiry_points": "number",
        "loyalty_relay_tier": "string",
        "loyalty_relay_last_change_at": "datetime",
    }


def test_it_treats_a_definition_made_meanwhile_as_found(
    portal: tuple[HubSpotSandboxState, int], setup_cli: Callable[..., Result]
) -> None:
    state, sink_id = portal
    state.fail_next(1, status=404, path="/properties/contacts/groups/loyalty_relay")
    state.schema["groups"]["loyalty_relay"] = {"name": "loyalty_relay", "label": "x"}

    result = setup_cli("--sink", str(sink_id))

    assert result.stdout.splitlines()[0] == "group loyalty_relay: found"  # the POST got a 409


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "either --sink ID or --store"),
        (["--sink", "999"], "need exactly one hubspot sink, found: none"),
        (["--store", "salla:404"], "no store salla:404"),
    ],
)
def test_it_says_which_hubspot_sink_it_needs(
    setup_cli: Callable[..., Result], args: list[str], message: str
) -> None:
    result = setup_cli(*args)

    assert result.exit_code != 0 and message in result.output


def test_it_reports_a_rejected_token_during_setup(
    portal: tuple[HubSpotSandboxState, int], setup_cli: Callable[..., Result]
) -> None:
    state, sink_id = portal
    state.tokens.clear()

    result = setup_cli("--sink", str(sink_id))

    assert result.exit_code == 1
    assert "PermanentError: HubSpot token rejected (401 Unauthorized)" in result.output
    assert DEMO_TOKEN not in result.output
