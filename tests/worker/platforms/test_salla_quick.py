"""The points page's fast path (``worker.platforms.salla.quick``) against its schema.

Whatever the fast path returns, the schema returns too; what it declines, the
schema still decides. Salla's published examples (``tests/fixtures/salla``,
from https://docs.salla.dev/12250577e0) must take the fast path, or it saves nothing.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from worker.errors import PermanentError
from worker.platforms.salla.quick import load_page, read_page
from worker.platforms.salla.schemas import PointsPage, load_points_page
from worker.sandbox.salla import (
    POINTS_PATHS,
    SallaSandboxState,
    create_salla_sandbox,
    sample_history,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "salla"
POINTS_FIXTURES = sorted(FIXTURES.glob("points_*.json"))

MISSING = object()
# What each field has been seen as, or could be: plain values first, then the odd ones.
NUMBERS = [
    900,
    0,
    -35,
    "12",
    "12.50",
    "-3.5",
    1.5,
    " 7 ",
    "7 ",
    "12abc",
    "1e3",
    "NaN",
    "abc",
    True,
    None,
    [],
    {},
]
TEXTS = ["مخصصة", "", "reason text", 42, 3.5, None, True, [], {}, MISSING]
DATES = [
    "2029-02-17 17:42:14",
    "2024-12-17T17:42:14+03:00",
    {"date": "2024-12-17 17:42:14.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
    "0000-00-00 00:00:00",
    "  ",
    "",
    "17/02/2029",
    {},
    [],
    [1],
    None,
    12,
    MISSING,
]
IDS = [98787845454, "123432", " 77 ", "", None, True, 10**300, 1.5, {}, "\x00", MISSING]
STATUSES = ["مؤكدة", "pending", "", None, 3, MISSING]
INTS = [1, 2, 0, -1, "2", 2.0, True, None, MISSING]
LINKS = [{"next": "http://api.salla.dev/admin/v2/x?page=2"}, {}, [], None, {"next": 3}, MISSING]


def fixture(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def schema_answer(document: Any) -> PointsPage | str:
    try:
        return load_points_page(document)
    except PermanentError as exc:
        return f"error: {exc}"


def put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is MISSING:
        target.pop(key, None)
    else:
        target[key] = value


def generated_page(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    """A published page with a few of its values swapped for others a store may send."""
    document = copy.deepcopy(base)
    fields = {
        "points": NUMBERS, "used_points": NUMBERS, "name": TEXTS, "notes": TEXTS,
        "status": STATUSES, "created_at": DATES, "expiry_date": DATES, "used_at": DATES,
        "order_id": IDS, "reference_id": IDS,
    }  # fmt: skip
    for entry in document["data"]:
        for _ in range(rng.randint(0, 3)):
            name = rng.choice(list(fields))
            put(entry, name, rng.choice(fields[name]))
    pagination = document["pagination"]
    for name in ("count", "total", "perPage", "currentPage", "totalPages"):
        if rng.random() < 0.15:
            put(pagination, name, rng.choice(INTS))
    if rng.random() < 0.15:
        put(pagination, "links", rng.choice(LINKS))
    if rng.random() < 0.1:
        put(document, "success", rng.choice([True, False, "true", 1, None, MISSING]))
    if rng.random() < 0.05:
        put(document, "data", rng.choice([[], {}, None, MISSING, [[]]]))
    return document


@pytest.mark.parametrize("path", POINTS_FIXTURES, ids=lambda path: path.name)
def test_the_published_examples_take_the_fast_path(path: Path) -> None:
    document = fixture(path)

    page = read_page(document)

    assert page is not None
    assert page == load_points_page(document)


def test_the_sandbox_pages_take_the_fast_path() -> None:
    state = SallaSandboxState()
    state.add_merchant("m1", access_token="tok", refresh_token="r")
    state.set_entries("m1", "c1", sample_history(count=70))
    client = create_salla_sandbox(state).test_client()
    headers = {"Authorization": "Bearer tok", "User-Agent": "t", "Accept": "application/json"}
    pages = [
        client.get(f"{POINTS_PATHS[0]}?customer_id=c1&page={n}&per_page=60", headers=headers)
        for n in (1, 2)
    ]

    assert [page.status_code for page in pages] == [200, 200]
    assert all(read_page(page.get_json()) == load_points_page(page.get_json()) for page in pages)
    assert all(read_page(page.get_json()) is not None for page in pages)


def test_every_page_it_reads_the_schema_reads_the_same() -> None:
    rng = random.Random(20261201)
    bases = [fixture(path) for path in POINTS_FIXTURES]
    taken = declined = 0
    for _ in range(3000):
        document = generated_page(rng, rng.choice(bases))
        fast, expected = read_page(document), schema_answer(document)
        if fast is None:
            declined += 1
            continue
        taken += 1
        assert fast == expected, json.dumps(document, ensure_ascii=False, default=str)
        assert load_page(document) == expected
    # Both kinds occur, or the comparison above proved little.
    assert taken > 300 and declined > 300


def test_a_page_it_declines_still_gets_the_schemas_error() -> None:
    document = fixture(POINTS_FIXTURES[0])
    document["data"][0]["points"] = "abc"

    assert read_page(document) is None
    with pytest.raises(PermanentError, match=r"data\.0\.points"):
        load_page(document)


def test_a_page_with_an_odd_but_valid_value_is_read_by_the_schema() -> None:
    document = fixture(POINTS_FIXTURES[0])
    document["data"][0]["points"] = 1.5  # a float: the schema's reading decides

    assert read_page(document) is None
    assert str(load_page(document).entries[0].points) == "1.5"
