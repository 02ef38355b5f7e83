"""Builders for webhooks, stores and sinks used across the tests."""

from __future__ import annotations

from typing import Any

from worker.platforms.base import StoreUpdate
from worker.platforms.salla.samples import encode, signed_headers
from worker.points import CHANGE_KINDS
from worker.runtime import Runtime
from worker.storage.models import Sink, Store
from worker.stores import save_store

MERCHANT = "1234509876"
CUSTOMER = "1257881496"


def salla_event(
    event: str = "order.status.updated", merchant: str = MERCHANT, **data: Any
) -> dict[str, Any]:
    customer = {"id": int(CUSTOMER), "email": "c@example.com"}
    if not data and event == "order.status.updated":
        # Reference: https://docs.salla.dev/433804m0#order-status-updated-webhook-event-model
        # (the status change in data, the order and its customer under data.order).
        data = {
            "id": 198290473,
            "status": "تم التنفيذ",
            "order": {"id": 98787845454, "customer": customer},
        }
    if not data and event.startswith("order."):
        # Reference: https://docs.salla.dev/433804m0#orders-webhook-events-model
        data = {"id": 98787845454, "customer": customer}
    if not data and event.startswith("customer."):
        # Reference: https://docs.salla.dev/doc-433808 (mobile is a number beside mobile_code)
        data = {
            "id": int(CUSTOMER),
            "email": "c@example.com",
            "mobile": 512345678,
            "mobile_code": "+966",
        }
    return {
        "event": event,
        "merchant": int(merchant) if merchant.isdigit() else merchant,
        "created_at": "Sun Jun 26 2022 12:21:48 GMT+0300",
        "data": data,
    }


def salla_headers(body: bytes, secret: str) -> dict[str, str]:
    return signed_headers(body, secret)


def add_salla_store(
    runtime: Runtime,
    merchant: str = MERCHANT,
    *,
    api_base: str | None = None,
    webhook_secrets: tuple[str, ...] = (),
    access_token: str = "access-1",
    refresh_token: str = "refresh-1",
) -> Store:
    credentials: dict[str, Any] = {"access_token": access_token, "refresh_token": refresh_token}
    if webhook_secrets:
        credentials["webhook_secrets"] = list(webhook_secrets)
    with runtime.transaction() as session:
        return save_store(
            runtime,
            session,
            "salla",
            merchant,
            StoreUpdate(status="active", credentials=credentials),
            api_base=api_base,
        )


def add_webhook_sink(runtime: Runtime, store: Store, url: str, secret: str) -> Sink:
    with runtime.transaction() as session:
        sink = Sink(
            store_id=store.id,
            kind="webhook",
            config=runtime.cipher.seal({"url": url, "secret": secret}),
            kinds=list(CHANGE_KINDS),
        )
        session.add(sink)
        session.flush()
        return sink


__all__ = ["CUSTOMER", "MERCHANT", "encode", "salla_event", "salla_headers"]
