"""A local Zid: the manager loyalty endpoints, the storefront points endpoint,
webhook subscriptions and the OAuth token endpoint.

Reference: zidsa/sdk-python (fixtures, ``zid/http.py``), zidsa/zid-agent-skill
references/*.md and https://docs.zid.sa/webhooks (the storefront points endpoint is
not published on a page we can cite; see ``worker.platforms.zid.client``). The client is given
``http://127.0.0.1:PORT`` as its API base, so routes sit at the root; they are
served under ``/v1`` too, so a realistic base works. Like Zid, it:

- wants ``Authorization: Bearer``, ``X-Manager-Token``, ``Store-Id`` and
  ``Role: Manager`` on manager endpoints (401 when the tokens are wrong or
  belong to another store, 403 without the role);
- wants the store's ``Authorization`` and a customer's ``X-CUSTOMER-TOKEN`` on
  the storefront endpoint;
- misspells ``available_poitns`` / ``used_poitns`` (``AnswerStyle`` changes that);
- counts a budget per store (60 a minute) and answers 429 with ``Retry-After`` past it,
  without any other rate-limit header (Zid documents none);
- refuses ``conditions: []`` and duplicate subscriptions, ignores a nested
  ``authentication{}`` and keeps top-level ``username``/``password``;
- treats refresh tokens as single use: a reused one is refused and revokes the
  store's tokens.

Tests and the demo drive it through ``ZidSandboxState`` (``zid_state``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, abort, current_app, request

from worker.sandbox.trouble import InjectedFailure, serve_trouble
from worker.sandbox.zid_records import (
    DEMO_APP_ID,
    DEMO_AUTHORIZATION,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_CUSTOMER_TOKEN,
    DEMO_MANAGER_TOKEN,
    DEMO_REDIRECT_URI,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    TOKEN_LIFETIME,
    AnswerStyle,
    RegisteredWebhook,
    TokenRefresh,
    ZidRequest,
    history_entry,
)
from worker.sandbox.zid_state import ZidSandboxState

__all__ = [
    "DEMO_APP_ID",
    "DEMO_AUTHORIZATION",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_CUSTOMER",
    "DEMO_CUSTOMER_TOKEN",
    "DEMO_MANAGER_TOKEN",
    "DEMO_REDIRECT_URI",
    "DEMO_REFRESH_TOKEN",
    "DEMO_STORE",
    "AnswerStyle",
    "RegisteredWebhook",
    "TokenRefresh",
    "ZidRequest",
    "ZidSandboxState",
    "create_zid_sandbox",
    "history_entry",
    "sandbox_state",
]

EXTENSION = "zid_sandbox"
PREFIXES = ("", "/v1")
EVENTS = frozenset(
    {
        "order.create",
        "order.status.update",
        "order.payment_status.update",
        "customer.create",
        "customer.update",
        "customer.merchant.update",
        "customer.login",
        "product.create",
        "product.update",
        "product.delete",
        "abandoned_cart.created",
        "abandoned_cart.completed",
        "category.create",
        "category.update",
        "category.delete",
    }
)


def create_zid_sandbox(state: ZidSandboxState | None = None) -> Flask:
    """The sandbox app; without ``state`` it serves ``ZidSandboxState.with_demo_store()``."""
    app = Flask(__name__)
    sandbox = state if state is not None else ZidSandboxState.with_demo_store()
    app.extensions[EXTENSION] = sandbox
    serve_trouble(app, sandbox, _failure_answer, _seen)

    _route(app, "/managers/loyalty-program/customers/details", _details)
    _route(app, "/managers/loyalty-program/points-history/<customer_id>", _history)
    _route(app, "/customers/loyalty-program/<store_id>/points", _storefront_points)
    _route(app, "/managers/webhooks", _webhooks, ["GET", "POST", "DELETE"])
    app.add_url_rule("/oauth/token", view_func=_token, methods=["POST"])
    return app


def sandbox_state(app: Flask) -> ZidSandboxState:
    state: ZidSandboxState = app.extensions[EXTENSION]
    return state


def _route(
    app: Flask, rule: str, view: Callable[..., Response], methods: list[str] | None = None
) -> None:
    for prefix in PREFIXES:
        endpoint = f"{view.__name__}{prefix.replace('/', '_')}"
        app.add_url_rule(prefix + rule, endpoint, view, methods=methods or ["GET"])


def _state() -> ZidSandboxState:
    return sandbox_state(current_app)


# --- manager endpoints ----------------------------------------------------------------------


def _manager_store() -> str:
    """The store the request's tokens belong to; aborts with Zid's answer otherwise."""
    state = _state()
    store_id = state.manager_store(_bearer(), request.headers.get("X-Manager-Token", ""))
    if store_id is None:
        abort(_error(401, "unauthenticated", "Unauthenticated."))
    if request.headers.get("Store-Id", "").strip() != store_id:
        abort(_error(401, "unauthenticated", "The tokens do not belong to this Store-Id."))
    if request.headers.get("Role") != "Manager":
        abort(_error(403, "forbidden", "This action is for the Manager role."))
    _spend_budget(state, store_id)
    return store_id


def _customer(store_id: str, customer_id: str) -> dict[str, Any]:
    customer = _state().customer(store_id, customer_id)
    if customer is None:
        abort(_error(404, "not_found", "Customer not found in the loyalty program."))
    return customer


def _details() -> Response:
    store_id = _manager_store()
    customer_id = request.args.get("customerId", "").strip()
    if not customer_id:
        required = {"customerId": ["The customer id field is required."]}
        return _error(422, "validation_error", "The customer id field is required.", required)
    customer = _customer(store_id, customer_id)
    style = _state().style
    info: dict[str, Any] = {
        "pending_points_balance": customer["pending"],
        "pending_negative_points_balance": 0,
        "total_positive_points": customer["available"] + customer["used"],
    }
    if style.points_balance:
        info["points_balance"] = customer["available"]
    info |= _spelled(style, customer["available"], customer["used"])
    if style.numbers_as_strings:
        info = {key: str(value) for key, value in info.items()}
    if style.history_in_details:
        info["history"] = customer["history"]
    return _json(200, _answer(loyalty_points_info=info))


def _history(customer_id: str) -> Response:
    customer = _customer(_manager_store(), customer_id)
    return _json(200, _answer(history=customer["history"]))


def _webhooks() -> Response:
    store_id = _manager_store()
    if request.method == "POST":
        return _create_webhook(store_id)
    if request.method == "DELETE":
        original_id = request.args.get("original_id", "").strip()
        if not original_id:
            return _error(422, "validation_error", "The original id field is required.")
        deleted = _state().delete_webhooks(store_id, original_id)
        return _json(200, _answer(message=_message("deleted", f"{deleted} webhooks deleted")))
    listed = [webhook.listed(store_id) for webhook in _state().webhooks(store_id)]
    return _json(200, _answer(data=listed))


def _create_webhook(store_id: str) -> Response:
    body = request.get_json(silent=True)
    problem = _subscription_problem(body)
    if problem:
        return _error(422, "validation_error", problem)
    assert isinstance(body, dict)
    webhook = RegisteredWebhook(
        id=f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}",
        event=body["event"],
        target_url=body["target_url"],
        original_id=str(body["original_id"]),
        conditions=body.get("conditions"),
        username=_text(body.get("username")),  # a nested authentication{} is ignored, as at Zid
        password=_text(body.get("password")),
    )
    if not _state().add_webhook(store_id, webhook):
        return _error(422, "validation_error", "This webhook is already registered.")
    return _json(200, webhook.listed(store_id))


def _subscription_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if body.get("event") not in EVENTS:
        return "The selected event is invalid."
    target = body.get("target_url")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        return "The target url must be a valid URL."
    if _text(body.get("original_id")) is None:
        return "The original id field is required."
    return _conditions_problem(body["event"], body.get("conditions"))


def _conditions_problem(event: str, conditions: Any) -> str | None:
    """Zid's documented conditions: null, or an object for the two order events only."""
    if conditions is None:
        return None
    if not isinstance(conditions, dict):
        return "The conditions must be null or an object."
    if event not in ("order.create", "order.status.update"):
        return "The selected event does not support conditions."
    unknown = set(conditions) - {"status", "delivery_option_id", "payment_method"}
    return f"Unknown condition: {sorted(unknown)[0]}." if unknown else None


# --- storefront and OAuth -------------------------------------------------------------------


def _storefront_points(store_id: str) -> Response:
    state = _state()
    customer_token = request.headers.get("X-CUSTOMER-TOKEN", "").strip()
    customer_id = state.storefront_customer(store_id, _bearer(), customer_token)
    if customer_id is None:
        return _error(401, "unauthenticated", "Unauthenticated.")
    _spend_budget(state, store_id)
    customer = _customer(store_id, customer_id)
    points = _spelled(state.style, customer["available"], customer["used"])
    return _json(200, _answer(points=points))


def _token() -> Response:
    state, form = _state(), request.form
    if form.get("grant_type") != "refresh_token":
        return _json(400, {"error": "unsupported_grant_type", "message": "Unsupported grant."})
    client_ok = state.client_matches(form.get("client_id", ""), form.get("client_secret", ""))
    if not client_ok or form.get("redirect_uri") != state.redirect_uri:
        return _json(401, {"error": "invalid_client", "message": "Client authentication failed"})
    outcome = state.exchange(form.get("refresh_token", ""))
    if outcome.tokens is None:
        refused = {"error": "invalid_request", "error_description": "The refresh token is invalid."}
        return _json(401, refused | {"hint": "Token has been revoked"})
    authorization, manager_token, refresh_token = outcome.tokens
    grant: dict[str, Any] = {"access_token": manager_token, "authorization": authorization}
    grant |= {"refresh_token": refresh_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME}
    return _json(200, grant)


# --- answers --------------------------------------------------------------------------------


def _spend_budget(state: ZidSandboxState, store_id: str) -> None:
    wait = state.take_budget(store_id).retry_after
    if wait is not None:
        response = _error(429, "too_many_requests", "Too Many Attempts.")
        response.headers["Retry-After"] = str(wait)
        abort(response)


def _spelled(style: AnswerStyle, available: int, used: int) -> dict[str, Any]:
    if style.spelling == "correct":
        return {"available_points": available, "used_points": used}
    return {"available_poitns": available, "used_poitns": used}


def _failure_answer(failure: InjectedFailure) -> Response:
    if failure.status == 401:
        return _error(401, "unauthenticated", "Unauthenticated.")
    if 300 <= failure.status < 400:
        # Not published: where Zid redirects an unauthenticated caller; a login page, as the
        # official SDK assumes (zidsa/sdk-python zid/http.py: "received redirect to login").
        return Response("", failure.status, headers={"Location": "https://web.zid.sa/login"})
    response = _error(failure.status, "server_error", "Something went wrong.")
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


def _seen(status: int) -> ZidRequest:
    view_args = request.view_args or {}
    return ZidRequest(
        method=request.method,
        path=request.path,
        status=status,
        store_id=request.headers.get("Store-Id"),
        customer_id=request.args.get("customerId") or view_args.get("customer_id"),
        authorization=_bearer(),
        manager_token=request.headers.get("X-Manager-Token"),
        customer_token=request.headers.get("X-CUSTOMER-TOKEN"),
        role=request.headers.get("Role"),
        accept_language=request.headers.get("Accept-Language"),
    )


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _message(code: str | None, description: str | None) -> dict[str, Any]:
    return {"type": "object", "code": code, "name": None, "description": description}


def _answer(**sections: Any) -> dict[str, Any]:
    return {
        "status": "object",
        **sections,
        "message": sections.get("message") or _message(None, None),
    }


def _error(
    status: int, code: str, description: str, fields: dict[str, list[str]] | None = None
) -> Response:
    if _state().style.errors == "envelope":
        error = {"code": code, "message": description, "fields": fields or {}}
        return _json(status, {"status": status, "success": False, "error": error})
    message = {"type": "error", "code": code, "name": None, "description": description}
    return _json(status, {"status": "error", "message": message})


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(json.dumps(document, ensure_ascii=False), status, mimetype="application/json")
