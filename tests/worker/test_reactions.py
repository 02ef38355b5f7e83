"""The pure reaction rules: filters, quiet hours (Asia/Riyadh), collapsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.points import BALANCE_CHANGED, EXPIRY_CHANGED, TIER_CHANGED
from worker.reactions import (
    after_quiet_hours,
    merge_payloads,
    send_at,
    validate_rules,
    wanted_kinds,
)

ALL = [BALANCE_CHANGED, EXPIRY_CHANGED, TIER_CHANGED]
NIGHT = {"start": "22:00", "end": "08:00"}


def change(before: float, after: float) -> dict[str, float]:
    return {"balance_before": before, "balance_after": after}


@pytest.mark.parametrize(
    ("rules", "before", "after", "wanted"),
    [
        ({}, 100, 150, True),
        ({"direction": "increase"}, 100, 150, True),
        ({"direction": "increase"}, 150, 100, False),
        ({"direction": "decrease"}, 150, 100, True),
        ({"direction": "decrease"}, 100, 150, False),
        ({"min_change": "50"}, 100, 149, False),
        ({"min_change": "50"}, 100, 150, True),
        ({"min_change": "50"}, 150, 100, True),
    ],
)
def test_it_filters_balance_changes(
    rules: dict[str, str], before: int, after: int, wanted: bool
) -> None:
    kinds = wanted_kinds("webhook", rules, ALL, [BALANCE_CHANGED], change(before, after))
    assert (kinds == [BALANCE_CHANGED]) is wanted


def test_it_keeps_other_kinds_when_the_balance_is_filtered_out() -> None:
    rules = {"direction": "increase"}
    kinds = wanted_kinds("webhook", rules, ALL, [BALANCE_CHANGED, TIER_CHANGED], change(150, 100))
    assert kinds == [TIER_CHANGED]


def test_it_only_delivers_subscribed_kinds() -> None:
    assert wanted_kinds("webhook", {}, [TIER_CHANGED], [BALANCE_CHANGED], change(0, 5)) == []


@pytest.mark.parametrize(
    ("utc", "released"),
    [
        ("2026-11-23T18:59:00", "2026-11-23T18:59:00"),  # 21:59 in Riyadh: not quiet yet
        ("2026-11-23T19:00:00", "2026-11-24T05:00:00"),  # 22:00 → held until 08:00
        ("2026-11-23T21:30:00", "2026-11-24T05:00:00"),  # 00:30, after midnight, same night
        ("2026-11-24T04:59:00", "2026-11-24T05:00:00"),  # 07:59
        ("2026-11-24T05:00:00", "2026-11-24T05:00:00"),  # 08:00: the window is open
    ],
)
def test_it_holds_messages_through_quiet_hours_across_midnight(utc: str, released: str) -> None:
    moment = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    expected = datetime.fromisoformat(released).replace(tzinfo=UTC)
    assert after_quiet_hours(NIGHT, moment, "Asia/Riyadh") == expected


def test_it_handles_a_daytime_quiet_window() -> None:
    noon = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # 12:30 in Riyadh
    hours = {"start": "12:00", "end": "14:00"}
    assert after_quiet_hours(hours, noon, "Asia/Riyadh") == datetime(2026, 11, 23, 11, tzinfo=UTC)


def test_it_never_holds_crm_updates() -> None:
    night = datetime(2026, 11, 23, 21, tzinfo=UTC)
    rules = {"quiet_hours": NIGHT, "collapse_seconds": 300}
    assert send_at(rules, "hubspot", night, "Asia/Riyadh") == night
    assert send_at(rules, "email", night, "Asia/Riyadh") > night


def test_it_collapses_two_changes_into_the_latest_state() -> None:
    first = {"kinds": [BALANCE_CHANGED], "balance_before": 100, "balance_after": 150,
             "before": {"available": 100}}  # fmt: skip
    second = {"kinds": [TIER_CHANGED, BALANCE_CHANGED], "balance_before": 150,
              "balance_after": 400, "before": {"available": 150}, "tier": "Gold"}  # fmt: skip
    merged = merge_payloads(first, second)
    assert (merged["balance_before"], merged["balance_after"], merged["tier"]) == (100, 400, "Gold")
    assert merged["kinds"] == [BALANCE_CHANGED, TIER_CHANGED]
    assert merged["before"] == {"available": 100}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"direction": "up"}, "direction"),
        ({"min_change": "-1"}, "min_change"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "start"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "different"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_rejects_bad_rules_readably(rules: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_rules(rules)


def test_it_stores_rules_as_json() -> None:
    stored = validate_rules({"direction": "increase", "min_change": "10", "quiet_hours": NIGHT})
    assert stored == {"direction": "increase", "min_change": "10", "quiet_hours": NIGHT}


def test_it_tells_crms_but_not_people_about_a_first_snapshot() -> None:
    first = change(0, 900) | {"first_seen": True}
    assert wanted_kinds("hubspot", {}, ALL, [BALANCE_CHANGED], first) == [BALANCE_CHANGED]
    assert wanted_kinds("email", {}, ALL, [BALANCE_CHANGED], first) == []
