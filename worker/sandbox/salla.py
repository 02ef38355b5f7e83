"""A local Salla: the Merchant API's loyalty-points endpoint and the OAuth token endpoint.

Reference: https://docs.salla.dev/12250577e0 (Customer Loyalty Points: the
history's envelope and entries, as in ``tests/fixtures/salla/points_*.json``),
https://docs.salla.dev/421125m0 (rate limits) and https://docs.salla.dev/421118m0
(OAuth). The client is given ``http://127.0.0.1:PORT`` as its API base, so
routes sit at the root; they are served under ``/admin/v2`` too, so a realistic
base works. Like Salla, it:

- pages the history (``page``, ``per_page`` up to 65) in the documented envelope,
  with a ``links.next`` that is ``http://`` and lacks ``per_page``, as published;
- labels statuses in Arabic (مؤكدة, as documented). Not published: what Salla
  answers under ``Accept-Language: en``; the sandbox then makes up English labels,
  so that tests show they are never trusted;
- answers 401 ``Invalid-token`` to an unknown or revoked bearer token, 422
  ``alert.invalid_fields`` without ``customer_id``, 404 for an unknown customer;
- counts a budget per token (429 with ``Retry-After`` past it) and sends
  ``X-RateLimit-*`` headers on every answer; an injected 403 is the JSON
  ``forbidden`` of a temporary block after sustained overuse;
- answers an HTML 403, as its firewall does, without ``User-Agent`` and
  ``Accept: application/json``;
- treats refresh tokens as single use: a reused one gets 401 ``invalid_grant``
  and revokes both of the merchant's tokens.

Tests and the demo drive it through ``SallaSandboxState`` (``salla_state``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, request

from worker.sandbox.salla_state import (
    DEMO_ACCESS_TOKEN,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_MERCHANT,
    DEMO_REFRESH_TOKEN,
    ENGLISH,
    SallaSandboxState,
    SandboxRequest,
    TokenRefresh,
    points_entry,
    sample_history,
)
from worker.sandbox.trouble import InjectedFailure, RateState

__all__ = [
    "DEMO_ACCESS_TOKEN",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_CUSTOMER",
    "DEMO_MERCHANT",
    "DEMO_REFRESH_TOKEN",
    "SallaSandboxState",
    "SandboxRequest",
    "TokenRefresh",
    "create_salla_sandbox",
    "points_entry",
    "sample_history",
    "sandbox_state",
]

EXTENSION = "salla_sandbox"
DEFAULT_PER_PAGE = 15
MAX_PER_PAGE = 65
WAF_PAGE = "<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>"
POINTS_PATHS = ("/customers/loyalty/points", "/admin/v2/customers/loyalty/points")


def create_salla_sandbox(state: SallaSandboxState | None = None) -> Flask:
    """The sandbox app; without ``state`` it serves ``SallaSandboxState.with_demo_store()``."""
    app = Flask(__name__)
    sandbox = state if state is not None else SallaSandboxState.with_demo_store()
    app.extensions[EXTENSION] = sandbox

    @app.before_request
    def gate() -> Response | None:
        time.sleep(sandbox.delay)
        if _refused_by_waf():
            return Response(WAF_PAGE, 403, mimetype="text/html")
        failure = sandbox.take_failure(request.path)
        return _failure_answer(sandbox, failure) if failure else None

    @app.after_request
    def finish(response: Response) -> Response:
        if "X-RateLimit-Limit" not in response.headers:
            _set_rate_headers(response, sandbox.peek_budget(_bearer()))
        sandbox.record(_seen(response.status_code))
        return response

    @app.get(POINTS_PATHS[0])
    @app.get(POINTS_PATHS[1])
    def loyalty_points() -> Response:
        return _points_answer(sandbox)

    @app.post("/oauth2/token")
    def oauth_token() -> Response:
        return _token_answer(sandbox)

    return app


def sandbox_state(app: Flask) -> SallaSandboxState:
    state: SallaSandboxState = app.extensions[EXTENSION]
    return state


def _points_answer(state: SallaSandboxState) -> Response:
    token = _bearer()
    merchant_id = state.merchant_for(token)
    if merchant_id is None:
        return _error(401, "Invalid-token", "please provide a valid API Key")
    budget = state.take_budget(token)
    if budget.retry_after is not None:
        return _set_rate_headers(_error(429, "too_many_requests", "Too Many Attempts."), budget)
    customer_id = (request.args.get("customer_id") or "").strip()
    if not customer_id:
        fields = {"customer_id": ["حقل customer id مطلوب."]}
        return _error(422, "error", "alert.invalid_fields", fields=fields)
    history = state.history(merchant_id, customer_id)
    if history is None:
        return _error(404, "not_found", "The customer was not found")
    return _json(200, _page_document(history, customer_id))


def _page_document(history: list[dict[str, Any]], customer_id: str) -> dict[str, Any]:
    page = _positive_int(request.args.get("page"), 1)
    per_page = min(_positive_int(request.args.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
    total_pages = max(1, math.ceil(len(history) / per_page))
    items = history[(page - 1) * per_page : page * per_page]
    english = request.accept_languages.best_match(["ar", "en"]) == "en"
    links: dict[str, str] = {}
    if page < total_pages:
        links["next"] = _page_link(customer_id, page + 1)
    if page > 1:
        links["previous"] = _page_link(customer_id, page - 1)
    pagination: dict[str, Any] = {"count": len(items), "total": len(history), "perPage": per_page}
    pagination |= {"currentPage": page, "totalPages": total_pages, "links": links}
    data = [_in_english(entry) if english else entry for entry in items]
    return {"status": 200, "success": True, "data": data, "pagination": pagination}


def _page_link(customer_id: str, page: int) -> str:
    # Exactly like the seed: plain http, the /admin/v2 prefix, and no per_page.
    query = f"customer_id={quote(customer_id)}&page={page}"
    return f"http://{request.host}/admin/v2/customers/loyalty/points?{query}"


def _in_english(entry: dict[str, Any]) -> dict[str, Any]:
    translated = dict(entry)
    for key in ("status", "name"):
        if isinstance(entry.get(key), str):
            translated[key] = ENGLISH.get(entry[key], entry[key])
    return translated


def _token_answer(state: SallaSandboxState) -> Response:
    form = request.form
    if form.get("grant_type") != "refresh_token":
        return _json(400, {"error": "unsupported_grant_type"})
    if not state.client_matches(form.get("client_id", ""), form.get("client_secret", "")):
        return _json(401, {"error": "invalid_client"})
    outcome = state.exchange(form.get("refresh_token", ""))
    if outcome.outcome != "rotated":
        return _json(401, {"error": "invalid_grant", "error_description": "token is invalid"})
    grant: dict[str, Any] = {
        "access_token": outcome.access_token,
        "refresh_token": outcome.new_refresh_token,
    }
    grant |= {"expires_in": state.token_lifetime, "token_type": "bearer"}
    return _json(200, grant | {"scope": "customers.read offline_access"})


def _failure_answer(state: SallaSandboxState, failure: InjectedFailure) -> Response:
    if failure.status == 401:
        return _error(401, "Invalid-token", "please provide a valid API Key")
    if failure.status == 403:
        # The temporary block after sustained overuse (https://docs.salla.dev/421125m0).
        response = _error(403, "forbidden", "Access refused or temporarily blocked")
        if failure.retry_after is not None:
            response.headers["Retry-After"] = str(failure.retry_after)
        return response
    if failure.status != 429:
        return _error(failure.status, "server_error", "Something went wrong")
    response = _error(429, "too_many_requests", "Too Many Attempts.")
    _set_rate_headers(response, replace(state.peek_budget(_bearer()), remaining=0))
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


def _refused_by_waf() -> bool:
    accept = request.headers.get("Accept", "")
    return not request.headers.get("User-Agent") or "application/json" not in accept


def _set_rate_headers(response: Response, budget: RateState) -> Response:
    response.headers["X-RateLimit-Limit"] = str(budget.limit)
    response.headers["X-RateLimit-Remaining"] = str(budget.remaining)
    response.headers["X-RateLimit-Reset"] = str(budget.reset)
    if budget.retry_after is not None:
        response.headers["Retry-After"] = str(budget.retry_after)
    return response


def _seen(status: int) -> SandboxRequest:
    return SandboxRequest(
        method=request.method,
        path=request.path,
        status=status,
        customer_id=request.args.get("customer_id"),
        page=request.args.get("page"),
        per_page=request.args.get("per_page"),
        token=_bearer(),
        user_agent=request.headers.get("User-Agent"),
        accept=request.headers.get("Accept"),
        accept_language=request.headers.get("Accept-Language"),
    )


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _positive_int(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value > 0 else default


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json(
        status,
        {"status": status, "success": False, "error": {"code": code, "message": message, **extra}},
    )


def _json(status: int, document: dict[str, Any]) -> Response:
    body = json.dumps(document, ensure_ascii=False)
    return Response(body, status, mimetype="application/json")
