"""Zid's answers: every example parses, both spellings, loose numbers, and
malformed answers say where without repeating the body."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.worker.platforms.zid_support import FIXTURES, fixture
from worker.errors import PermanentError
from worker.platforms.zid.schemas import (
    error_summary,
    load_balance,
    load_history,
    load_storefront_points,
    load_subscription,
    load_subscriptions,
    load_token_grant,
)

LOADERS: dict[str, Callable[[Any], Any]] = {
    "details": load_balance,
    "points_history": load_history,
    "storefront_points": load_storefront_points,
    "token": load_token_grant,
    "webhooks": load_subscriptions,
}


def loader_for(name: str) -> Callable[[Any], Any]:
    return next(load for prefix, load in LOADERS.items() if name.startswith(prefix))


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_it_parses_every_example(name: str) -> None:
    assert loader_for(name)(fixture(name)) is not None


def test_it_reads_the_seed_storefront_example() -> None:
    points = load_storefront_points(fixture("storefront_points_seed_004.json"))
    assert (points.available, points.used) == (Decimal(0), Decimal(0))


def test_it_reads_the_details_with_zids_misspellings() -> None:
    balance = load_balance(fixture("details.json"))
    assert (balance.available, balance.pending, balance.used) == (1250, 80, 300)
    assert (balance.points_balance, balance.available_points) == (1250, 1250)


def test_it_reads_the_correct_spelling_and_falls_back_from_points_balance() -> None:
    balance = load_balance(fixture("details_correct_spelling.json"))
    assert balance.points_balance is None
    assert (balance.available, balance.pending, balance.used) == (
        Decimal("940.5"),
        Decimal("12.5"),
        Decimal(60),
    )


def test_it_prefers_points_balance_when_the_two_balances_differ() -> None:
    document = fixture("details.json")
    document["loyalty_points_info"] |= {"points_balance": "700", "available_poitns": 900}
    balance = load_balance(document)
    assert (balance.available, balance.available_points) == (700, 900)


def test_it_reads_the_correct_spelling_on_the_storefront_too() -> None:
    document = {"status": "object", "points": {"available_points": "15", "used_points": 2.5}}
    points = load_storefront_points(document)
    assert (points.available, points.used) == (Decimal(15), Decimal("2.5"))


def test_it_reads_the_history_with_loose_values() -> None:
    entries = load_history(fixture("points_history.json"))
    assert [entry.points for entry in entries[:3]] == [80, 200, 500]
    assert all(isinstance(entry.points, Decimal) for entry in entries)
    assert entries[1].expiry_date == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    assert (entries[0].order_number, entries[2].order_number) == ("71204466", "71199954")
    assert [entry.status_code for entry in entries[:2]] == ["pending", "active"]
    assert entries[0].is_credit and not entries[4].is_credit


def test_it_takes_a_date_without_an_offset_as_utc() -> None:
    entry = {"points": 1, "direction": "+", "expiry_date": "2026-03-01 10:00:00"}
    [parsed] = load_history({"history": [entry]})
    assert parsed.expiry_date == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_it_falls_back_to_the_status_label_when_the_code_is_missing() -> None:
    entry = {"points": 1, "direction": "+", "point_status": " Expired "}
    assert load_history({"history": [entry]})[0].status_code == "expired"


@pytest.mark.parametrize("points", [True, "lots", "NaN", "Infinity", None, {"value": 1}, [1]])
def test_it_refuses_points_that_are_not_numbers(points: Any) -> None:
    entry = {"points": points, "direction": "+", "reason": "secret-customer-note"}
    with pytest.raises(PermanentError, match=r"history\.0\.points") as refused:
        load_history({"history": [entry]})
    assert "secret-customer-note" not in str(refused.value)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ([], "not a JSON object"),
        ({"status": "object"}, "loyalty_points_info"),
        ({"loyalty_points_info": {"used_poitns": 1}}, "points_balance"),
        ({"loyalty_points_info": {"points_balance": "x"}}, "points_balance"),
    ],
)
def test_it_explains_malformed_details(document: Any, where: str) -> None:
    with pytest.raises(PermanentError, match="Zid loyalty details response is malformed") as bad:
        load_balance(document)
    assert where in str(bad.value)


def test_it_refuses_a_history_entry_with_a_bad_date() -> None:
    entry = {"points": 1, "direction": "+", "expiry_date": "next tuesday"}
    with pytest.raises(PermanentError, match=r"history\.0\.expiry_date"):
        load_history({"history": [entry]})


def test_it_reads_a_token_answer() -> None:
    grant = load_token_grant(fixture("token.json"))
    assert grant.manager_token == "def50200a1b2c3manager"
    assert grant.authorization.endswith(".partner") and grant.refresh_token.endswith("refresh")
    assert grant.expires_at(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_it_reads_a_token_answer_with_a_capitalised_authorization() -> None:
    document = fixture("token.json")
    document["Authorization"] = document.pop("authorization")
    assert load_token_grant(document).authorization.endswith(".partner")


def test_it_refuses_a_token_answer_without_authorization() -> None:
    document = fixture("token.json")
    del document["authorization"]
    with pytest.raises(PermanentError, match="token response"):
        load_token_grant(document)


def test_it_reads_subscriptions_with_ids_as_numbers_or_strings() -> None:
    ours, theirs = load_subscriptions(fixture("webhooks.json"))
    assert (ours.event, ours.original_id, ours.active) == ("order.create", "sandbox-zid-app", True)
    assert (theirs.original_id, theirs.active) == ("4471", False)


@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: {"data": s}, lambda s: {"webhook": s}])
def test_it_reads_a_created_subscription_bare_or_wrapped(wrap: Callable[[Any], Any]) -> None:
    created = fixture("webhooks.json")["data"][0] | {"username": "u", "password": "p"}
    subscription = load_subscription(wrap(created))
    assert subscription.target_url.endswith("/webhooks/zid/3059/order.create")
    assert "p" not in vars(subscription).values()


def test_it_refuses_a_listing_without_data() -> None:
    with pytest.raises(PermanentError, match="no 'data' list"):
        load_subscriptions({"status": "object"})


@pytest.mark.parametrize(
    ("document", "summary"),
    [
        ({"message": {"type": "error", "code": "not_found", "description": "No such customer"}},
         "not_found: No such customer"),
        ({"message": "Unauthenticated."}, "Unauthenticated."),
        ({"error": "invalid_client", "message": "Client authentication failed"}, "invalid_client"),
        ({"message": {"type": "error", "code": None, "name": None}}, "no error details"),
        ({"message": {"code": {"nested": 1}}}, "no error details"),
        (["not", "an", "object"], "no error details"),
        ({"message": "x" * 500}, "x" * 299 + "…"),
        # The documented envelope (zidsa/zid-agent-skill references/error-handling.md):
        ({"status": 422, "success": False, "error": {"code": "validation_failed",
          "message": "Invalid input data.", "fields": {"email": ["Email format is invalid."]}}},
         "validation_failed: Invalid input data. (fields: email)"),
        ({"status": 401, "success": False, "error": {"code": "unauthorized", "message": ""}},
         "unauthorized"),
        ({"success": False, "error": {"fields": {"mobile": ["taken"]}}}, "fields: mobile"),
        ({"success": False, "error": {}}, "no error details"),
        # Values a message quotes are masked, never repeated:
        ({"success": False, "error": {"code": "validation_failed",
          "message": "The email sara@example.com or +966 50 123 4567 is taken"}},
         "validation_failed: The email [email] or [number] is taken"),
        ({"message": {"code": "taken", "description": "Mobile 966512345678 exists"}},
         "taken: Mobile [number] exists"),
    ],
)  # fmt: skip
def test_it_summarises_error_bodies(document: Any, summary: str) -> None:
    assert error_summary(document) == summary
