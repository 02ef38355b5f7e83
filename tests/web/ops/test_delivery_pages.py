"""Deliveries and Inbox pages over the query layer: masked data, cursors,
actions and refusals, with the Flask test client on a real database."""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient

from tests.web.ops.conftest import csrf_token
from tests.worker.ops.support import add_deliveries, add_event, store_and_sink
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent

EMAIL, PHONE = "noura@example.com", "+966512345678"
PERSONAL = {"email": EMAIL, "phone": PHONE, "note": f"reach me at {EMAIL} or {PHONE}"}


def page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def test_it_never_shows_a_customers_email_or_phone(runtime: Runtime, operator: FlaskClient) -> None:
    _, sink = store_and_sink(runtime)
    [delivery_id] = add_deliveries(runtime, sink, ["dead"], payload=PERSONAL)
    body = json.dumps({"event": "customer.updated", "data": PERSONAL}).encode()
    event_id = add_event(runtime, "done", body)
    for path in ("/ops/deliveries", f"/ops/deliveries/{delivery_id}", "/ops/inbox",
                 f"/ops/inbox/{event_id}"):  # fmt: skip
        html = page(operator, path)
        assert EMAIL not in html and PHONE not in html and "512345678" not in html
    assert "[masked]" in page(operator, f"/ops/deliveries/{delivery_id}")
    assert "[masked]" in page(operator, f"/ops/inbox/{event_id}")


def test_it_pages_with_next_and_previous_cursors(runtime: Runtime, operator: FlaskClient) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead"] * 5)  # a minute apart: ids[-1] is newest
    first = page(operator, "/ops/deliveries?status=dead&limit=2")
    assert shown(first) == [ids[4], ids[3]] and 'rel="prev"' not in first
    second = page(operator, link(first, "next"))
    assert shown(second) == [ids[2], ids[1]]
    third = page(operator, link(second, "next"))
    assert shown(third) == [ids[0]] and 'rel="next"' not in third
    assert shown(page(operator, link(third, "prev"))) == [ids[2], ids[1]]
    assert shown(page(operator, link(second, "prev"))) == [ids[4], ids[3]]


def shown(html: str) -> list[str]:
    return re.findall(r'<a href="/ops/deliveries/(msg_\w+)">', html)


def link(html: str, rel: str) -> str:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    assert match, f"no {rel} link"
    return match.group(1).replace("&amp;", "&")


@pytest.mark.parametrize(
    "query", ["status=lost", "sink=abc", "since=3y", "limit=x", "after=not-a-cursor",
              "store=salla:999"]
)  # fmt: skip
def test_it_answers_bad_filters_with_a_400_page(operator: FlaskClient, query: str) -> None:
    answer = operator.get(f"/ops/deliveries?{query}")
    assert answer.status_code == 400 and "Traceback" not in answer.get_data(as_text=True)


def test_it_answers_an_unknown_delivery_with_a_404_page(operator: FlaskClient) -> None:
    assert operator.get("/ops/deliveries/msg_nope").status_code == 404
    assert operator.get("/ops/inbox/999999").status_code == 404


def test_it_retries_a_dead_delivery_once(runtime: Runtime, operator: FlaskClient) -> None:
    _, sink = store_and_sink(runtime)
    [dead, delivered] = add_deliveries(runtime, sink, ["dead", "delivered"])
    token = csrf_token(operator, "/ops/deliveries")
    for delivery_id in (dead, delivered, dead):
        operator.post(f"/ops/deliveries/{delivery_id}/retry", data={"csrf_token": token})
    assert status_of(runtime, dead) == "pending" and status_of(runtime, delivered) == "delivered"
    html = page(operator, "/ops/deliveries")
    assert "is not dead or retrying" in html  # the last two clicks moved nothing


def test_it_retries_every_dead_delivery_of_a_sink(runtime: Runtime, operator: FlaskClient) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "dead", "delivered", "retrying"])
    token = csrf_token(operator, "/ops/deliveries?status=dead")
    answer = operator.post(
        "/ops/deliveries/retry", data={"csrf_token": token, "status": "dead", "sink": sink.id}
    )
    assert answer.status_code == 303
    assert [status_of(runtime, i) for i in ids] == ["pending", "pending", "delivered", "retrying"]


def test_it_discards_a_dead_delivery(runtime: Runtime, operator: FlaskClient) -> None:
    _, sink = store_and_sink(runtime)
    [dead] = add_deliveries(runtime, sink, ["dead"])
    token = csrf_token(operator, f"/ops/deliveries/{dead}")
    operator.post(f"/ops/deliveries/{dead}/discard", data={"csrf_token": token})
    assert status_of(runtime, dead) == "skipped"


def test_it_replays_a_processed_webhook(runtime: Runtime, operator: FlaskClient) -> None:
    store_and_sink(runtime)
    event_id = add_event(runtime, "done", b'{"event": "order.created"}')
    token = csrf_token(operator, "/ops/inbox")
    operator.post(f"/ops/inbox/{event_id}/replay", data={"csrf_token": token})
    with runtime.sessions() as session:
        assert session.get_one(InboxEvent, event_id).status == "pending"


def test_it_filters_the_inbox_by_platform(runtime: Runtime, operator: FlaskClient) -> None:
    salla = add_event(runtime, "done", b"{}", 0)
    zid = add_event(runtime, "done", b"{}", 1, "order.create", platform="zid")
    html = page(operator, "/ops/inbox?platform=zid")
    assert f"/ops/inbox/{zid}" in html and f"/ops/inbox/{salla}" not in html
    assert "<option selected>zid</option>" in html
    assert operator.get("/ops/inbox?platform=nope").status_code == 400


def status_of(runtime: Runtime, delivery_id: str) -> str:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id).status
