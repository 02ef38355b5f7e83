"""Zid's balance rules: Zid's balances as given, the next expiry computed here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.worker.platforms.zid_support import fixture
from worker.errors import PermanentError
from worker.platforms.zid.balance import snapshot_from_balance
from worker.platforms.zid.schemas import HistoryEntry, LoyaltyBalance, load_balance, load_history

NOW = datetime(2026, 1, 10, tzinfo=UTC)
RIYADH = ZoneInfo("Asia/Riyadh")
BALANCE = load_balance(fixture("details.json"))
HISTORY = load_history(fixture("points_history.json"))


def credit(points: int, expiry: datetime | None, status: str = "active") -> HistoryEntry:
    return HistoryEntry(Decimal(points), "+", status, expiry_date=expiry)


def balance(available: int) -> LoyaltyBalance:
    return LoyaltyBalance(Decimal(available), Decimal(0), Decimal(0), Decimal(available), None)


def test_it_takes_the_balances_from_zid() -> None:
    snapshot = snapshot_from_balance(BALANCE, HISTORY, timezone="Asia/Riyadh", now=NOW)
    assert (snapshot.available, snapshot.pending, snapshot.used) == (1250, 80, 300)
    assert snapshot.tier is None and snapshot.unknown_statuses == ()


def test_it_finds_the_next_expiry_and_the_points_expiring_that_local_day() -> None:
    # 300 expire 08:00 and 500 at 23:30 on 1 March in Riyadh; 200 at 01:00 on 2 March.
    snapshot = snapshot_from_balance(BALANCE, HISTORY, timezone="Asia/Riyadh", now=NOW)
    assert snapshot.next_expiry_at == datetime(2026, 3, 1, 8, 0, tzinfo=RIYADH)
    assert snapshot.next_expiry_points == 800


def test_it_counts_the_local_day_in_the_stores_time_zone() -> None:
    # In UTC all three expire on 1 March.
    snapshot = snapshot_from_balance(BALANCE, HISTORY, timezone="UTC", now=NOW)
    assert snapshot.next_expiry_points == 1000


def test_it_leaves_out_pending_expired_spent_and_past_credits() -> None:
    history = [
        credit(80, datetime(2026, 2, 1, tzinfo=UTC), "pending"),
        credit(40, datetime(2026, 2, 2, tzinfo=UTC), "expired"),
        credit(30, datetime(2026, 2, 3, tzinfo=UTC), "used"),
        credit(20, datetime(2026, 1, 9, tzinfo=UTC)),  # past, label not updated yet
        HistoryEntry(Decimal(10), "-", "active", expiry_date=datetime(2026, 2, 4, tzinfo=UTC)),
        credit(60, datetime(2026, 2, 5, tzinfo=UTC), "unheard-of"),
    ]
    snapshot = snapshot_from_balance(balance(500), history, timezone="UTC", now=NOW)
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (
        datetime(2026, 2, 5, tzinfo=UTC),
        60,
    )


def test_it_caps_the_expiring_points_at_the_balance() -> None:
    history = [credit(900, datetime(2026, 2, 1, tzinfo=UTC))]
    snapshot = snapshot_from_balance(balance(250), history, timezone="UTC", now=NOW)
    assert snapshot.next_expiry_points == 250


def test_it_has_no_next_expiry_without_dated_credits() -> None:
    history = [credit(100, None)]
    snapshot = snapshot_from_balance(balance(100), history, timezone="Asia/Riyadh", now=NOW)
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (None, 0)


def test_it_never_reports_a_negative_balance() -> None:
    snapshot = snapshot_from_balance(balance(-5), [], timezone="UTC", now=NOW)
    assert snapshot.available == 0


def test_it_refuses_an_unknown_time_zone() -> None:
    with pytest.raises(PermanentError, match="Mars/Base"):
        snapshot_from_balance(BALANCE, HISTORY, timezone="Mars/Base", now=NOW)


def test_it_wants_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_from_balance(BALANCE, HISTORY, timezone="UTC", now=datetime(2026, 1, 10))
