"""Salla's response schemas: Salla's published examples and the quirks
its answers are known to have."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from worker.errors import PermanentError
from worker.platforms.salla.schemas import (
    ApiError,
    PointsPage,
    error_summary,
    load_error,
    load_points_page,
    load_token_grant,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "salla"
POINTS_FIXTURES = sorted(FIXTURES.glob("points_*.json"))
ERROR_FIXTURES = sorted(FIXTURES.glob("error_*.json"))


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def page_with(**entry_fields: Any) -> dict[str, Any]:
    """The seed page with its first entry changed (a key set to ... is removed)."""
    document = copy.deepcopy(fixture("points_000.json"))
    entry = document["data"][0]
    for key, value in entry_fields.items():
        if value is ...:
            entry.pop(key)
        else:
            entry[key] = value
    return document


def first_entry(**entry_fields: Any) -> Any:
    return load_points_page(page_with(**entry_fields)).entries[0]


def test_it_has_a_fixture_for_every_seed_example() -> None:
    names = {path.name for path in FIXTURES.glob("*.json")}
    expected = {"points_000.json", "points_001.json", "points_002.json"}
    assert names == expected | {"error_401.json", "error_422.json"}


@pytest.mark.parametrize("path", POINTS_FIXTURES, ids=lambda path: path.name)
def test_it_parses_the_seed_points_examples(path: Path) -> None:
    page = load_points_page(json.loads(path.read_text(encoding="utf-8")))

    assert isinstance(page, PointsPage)
    assert [entry.points for entry in page.entries] == [Decimal(900), Decimal(900)]
    assert {entry.status for entry in page.entries} == {"مؤكدة"}
    assert page.entries[0].expiry_date == datetime(2029, 2, 17, 17, 42, 14)
    assert page.entries[0].order_id == "98787845454"
    assert page.entries[0].reference_id == "3215487"
    assert (page.pagination.current_page, page.pagination.total_pages) == (1, 2)
    assert page.pagination.next_link is not None
    assert page.pagination.next_link.startswith("http://")


def test_it_parses_the_mirror_with_null_ids_and_used_at() -> None:
    second = load_points_page(fixture("points_002.json")).entries[1]

    assert (second.order_id, second.reference_id, second.used_at) == (None, None, None)
    assert second.notes == "sample note"


def test_it_parses_used_at_as_an_empty_object_or_a_date() -> None:
    entries = load_points_page(fixture("points_000.json")).entries

    assert entries[0].used_at is None
    assert entries[1].used_at == "2025-12-31 23:59:59"


def test_it_parses_the_seed_401_error() -> None:
    error = load_error(fixture("error_401.json"))

    assert error == ApiError(
        code="Invalid-token", message="please provide a valid API Key", status=401
    )
    assert error.summary() == "Invalid-token: please provide a valid API Key"


def test_it_parses_the_seed_422_error() -> None:
    error = load_error(fixture("error_422.json"))

    assert error.status == 422
    assert error.fields == {"customer_id": ("حقل customer id مطلوب.",)}
    assert "alert.invalid_fields" in error.summary()
    assert "customer_id" in error.summary()


@pytest.mark.parametrize("path", ERROR_FIXTURES, ids=lambda path: path.name)
def test_it_parses_every_seed_error_into_a_summary(path: Path) -> None:
    summary = error_summary(json.loads(path.read_text(encoding="utf-8")))

    assert summary.startswith(("Invalid-token", "error: alert.invalid_fields"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(98787845454, "98787845454"), ("3215487", "3215487"), (" 12 ", "12"), (None, None)],
)
def test_it_normalises_ids_to_strings(raw: Any, expected: str | None) -> None:
    assert first_entry(order_id=raw, reference_id=raw).order_id == expected
    assert first_entry(order_id=..., reference_id=raw).reference_id == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, None),
        ([], None),
        (None, None),
        ("", None),
        ("2025-12-31 23:59:59", "2025-12-31 23:59:59"),
        (
            {"date": "2025-01-02 03:04:05.000000", "timezone": "Asia/Riyadh"},
            "2025-01-02 03:04:05.000000",
        ),
    ],
)
def test_it_normalises_used_at(raw: Any, expected: str | None) -> None:
    assert first_entry(used_at=raw).used_at == expected


@pytest.mark.parametrize(
    ("points", "used", "left"),
    [("900", "100", Decimal(800)), ("12.5", 0, Decimal("12.5")), (-50, None, Decimal(-50))],
)
def test_it_reads_points_as_decimals(points: Any, used: Any, left: Decimal) -> None:
    entry = first_entry(points=points, used_points=used)

    assert isinstance(entry.points, Decimal)
    assert entry.points_left == left


@pytest.mark.parametrize("raw", [..., None, "", "0000-00-00 00:00:00"])
def test_it_reads_a_missing_expiry_as_none(raw: Any) -> None:
    assert first_entry(expiry_date=raw).expiry_date is None


def test_it_reads_created_at_as_store_wall_time() -> None:
    assert first_entry().created_at == datetime(2024, 12, 17, 17, 42, 14)


def test_it_ignores_unknown_fields_and_empty_php_links() -> None:
    document = page_with(loyalty_tier="gold")
    document["pagination"]["links"] = []
    document["meta"] = {"anything": True}

    page = load_points_page(document)

    assert page.pagination.next_link is None
    assert len(page.entries) == 2


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"points": "lots"}, "data.0.points"),
        ({"points": True}, "data.0.points"),
        ({"status": ...}, "data.0.status"),
        ({"expiry_date": "next tuesday"}, "data.0.expiry_date"),
        ({"used_at": 5}, "data.0.used_at"),
    ],
)
def test_it_raises_a_readable_permanent_error_on_a_malformed_entry(
    change: dict[str, Any], path: str
) -> None:
    document = page_with(notes="customer note 0555-SECRET", **change)

    with pytest.raises(PermanentError) as raised:
        load_points_page(document)

    message = str(raised.value)
    assert message.startswith("Salla loyalty points response is malformed: ")
    assert path in message
    assert "0555-SECRET" not in message
    assert raised.value.__cause__ is None


@pytest.mark.parametrize("document", [[], "html", None, {"status": 200, "data": []}])
def test_it_raises_permanent_error_on_a_response_that_is_no_page(document: Any) -> None:
    with pytest.raises(PermanentError, match="malformed"):
        load_points_page(document)


def test_it_keeps_malformed_messages_short() -> None:
    document = fixture("points_000.json")
    document["data"] = [{"points": "x"}] * 500

    with pytest.raises(PermanentError) as raised:
        load_points_page(document)

    assert len(str(raised.value)) <= 400
    assert "more)" in str(raised.value)


def test_it_reads_a_token_grant_with_expires_in() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    grant = load_token_grant(
        {"access_token": "at", "refresh_token": "rt", "expires_in": 1209600, "token_type": "bearer"}
    )

    assert grant.expires_at(now) == datetime(2025, 1, 15, tzinfo=UTC)


def test_it_reads_a_token_grant_with_an_expires_timestamp() -> None:
    grant = load_token_grant({"access_token": "at", "refresh_token": "rt", "expires": 1735689600})

    assert grant.expires_at(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(2025, 1, 1, tzinfo=UTC)


def test_it_refuses_a_token_grant_without_a_refresh_token() -> None:
    with pytest.raises(PermanentError, match="refresh_token"):
        load_token_grant({"access_token": "at", "expires_in": 60})


@pytest.mark.parametrize(
    ("document", "summary"),
    [
        ({"error": "invalid_grant", "error_description": "used"}, "invalid_grant"),
        ({"status": 404, "success": False, "error": {"code": "not_found"}}, "not_found"),
        ({"success": False}, "no error details"),
        ("<html>", "no error details"),
    ],
)
def test_it_summarises_any_error_body(document: Any, summary: str) -> None:
    assert error_summary(document) == summary
