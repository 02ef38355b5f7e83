"""The naive baseline of bench/worker.py: a Celery app that does only the visible work.

    gunicorn 'naive_worker:receiver'            (the bench starts both, cwd bench/)
    celery -A naive_worker worker -Q naive ...

The receiver enqueues each webhook's body and signature as it comes; the task
verifies the signature, GETs every page of the customer's points history from
the same Salla stand-in, sums it and POSTs the balance to the store's sink. No
database, no coalescing, no quota, no outbox: what the relay's guarantees cost
is the difference between the two.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from functools import cache
from typing import Any

import httpx
from celery import Celery
from flask import Flask, Response, request

QUEUE = "naive"
TASK = "naive.refresh"
PER_PAGE = 60

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
)
receiver = Flask(__name__)


@receiver.post("/webhooks/salla")
def receive() -> Response:
    signature = request.headers.get("X-Salla-Signature", "")
    app.send_task(TASK, args=(request.get_data(as_text=True), signature), queue=QUEUE)
    return Response('{"ok":true}', 200, mimetype="application/json")


@receiver.get("/healthz")
def healthz() -> Response:
    return Response("ok", 200)


@cache
def _http() -> httpx.Client:
    return httpx.Client(timeout=10.0, headers={"Accept": "application/json"})


@app.task(
    name=TASK, acks_late=True, autoretry_for=(httpx.HTTPError,), retry_backoff=1, max_retries=8
)
def refresh(body: str, signature: str) -> None:
    """Like the relay, a failed call is tried again later rather than lost."""
    secret = os.environ["NAIVE_SECRET"].encode()
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return
    document = json.loads(body)
    merchant, customer = str(document["merchant"]), str(document["data"]["customer"]["id"])
    entries = _history(merchant, customer)
    balance = sum(int(e["points"]) - int(e["used_points"] or 0) for e in entries)
    sink = f"{os.environ['NAIVE_SINK_URL']}/naive/{merchant}"
    _http().post(sink, json={"customer_id": customer, "balance": balance}).raise_for_status()


def _history(merchant: str, customer: str) -> list[dict[str, Any]]:
    api, token = os.environ["NAIVE_API_URL"], f"tok-{merchant}"
    entries: list[dict[str, Any]] = []
    page, pages = 1, 1
    while page <= pages:
        query: dict[str, str | int] = {"customer_id": customer, "page": page, "per_page": PER_PAGE}
        answer = _http().get(
            f"{api}/customers/loyalty/points",
            params=query,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "naive"},
        )
        answer.raise_for_status()
        document = answer.json()
        entries += document["data"]
        pages, page = int(document["pagination"]["totalPages"]), page + 1
    return entries
