"""The outbound clients keep no cookies: one client serves every store of a platform
and every merchant's webhook endpoints, so a cookie set in one store's answer must
not go out with another store's request to the same host.

The server is real: it sets a cookie on every answer and records what it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask import Flask, request

from worker.http import build_client, shared_client
from worker.sandbox.server import RunningServer


def cookie_setting_app(seen: list[str | None]) -> Flask:
    app = Flask(__name__)

    @app.get("/<store>")
    def answer(store: str) -> tuple[dict[str, str], int, dict[str, str]]:
        seen.append(request.headers.get("Cookie"))
        return {"store": store}, 200, {"Set-Cookie": f"session={store}-secret; Path=/"}

    return app


CLIENTS: dict[str, Callable[[], httpx.Client]] = {
    "platform": lambda: shared_client(2.0, allow_private=True, counted_as="salla"),
    "sink": lambda: build_client(2.0, allow_private=True),
}


@pytest.mark.parametrize("which", list(CLIENTS))
def test_a_cookie_one_answer_set_goes_out_with_no_later_request(
    serve: Callable[[Any], RunningServer], which: str
) -> None:
    seen: list[str | None] = []
    url = serve(cookie_setting_app(seen)).url
    client = CLIENTS[which]()

    first = client.get(f"{url}/store-a")
    second = client.get(f"{url}/store-b")

    assert first.headers["set-cookie"].startswith("session=store-a-secret")
    assert second.json() == {"store": "store-b"}
    assert seen == [None, None]
    assert len(client.cookies) == 0


def test_cookies_set_by_hand_are_kept_neither() -> None:
    client = build_client(2.0, allow_private=True)
    client.cookies.set("session", "by-hand")
    with pytest.raises(TypeError, match="keep no cookies"):
        client.cookies = {"session": "x"}
    assert len(client.cookies) == 0
