"""``stores add zid`` and ``zid register-webhooks`` against the Zid sandbox and a real database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import relay_env
from tests.worker.platforms.zid_support import PREVIOUS_SECRET
from web import create_app
from worker.cli.app import main
from worker.config import Settings
from worker.platforms.zid.cli import add_zid, zid
from worker.platforms.zid.webhooks import SUBSCRIBED_EVENTS
from worker.runtime import Runtime
from worker.sandbox.server import RunningServer
from worker.sandbox.zid import (
    DEMO_APP_ID,
    DEMO_AUTHORIZATION,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_MANAGER_TOKEN,
    DEMO_REDIRECT_URI,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    RegisteredWebhook,
    ZidSandboxState,
    create_zid_sandbox,
)
from worker.storage.models import Store
from worker.stores import find_store

PUBLIC_URL = "https://relay.example.com"
Cli = Callable[..., Result]


@pytest.fixture
def state() -> ZidSandboxState:
    zid_state = ZidSandboxState()
    zid_state.add_store(DEMO_STORE)
    return zid_state


@pytest.fixture
def env(
    runtime: Runtime,
    tmp_path: Path,
    settings: Settings,
    redis_url: str,
    state: ZidSandboxState,
    serve: Callable[[Any], RunningServer],
) -> dict[str, str]:
    api = serve(create_zid_sandbox(state))
    return relay_env(
        tmp_path,
        settings.database_url,
        redis_url,
        ZID_API_BASE=api.url,
        ZID_APP_ID=DEMO_APP_ID,
        ZID_OAUTH_TOKEN_URL=f"{api.url}/oauth/token",
        ZID_CLIENT_ID=DEMO_CLIENT_ID,
        ZID_CLIENT_SECRET=DEMO_CLIENT_SECRET,
        ZID_REDIRECT_URI=DEMO_REDIRECT_URI,
        RELAY_ZID_QUOTA="600/60",  # a registration makes ten calls; don't wait for the bucket
    )


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    runner = CliRunner()

    def invoke(command: click.Command, *args: str, **extra_env: str) -> Result:
        return runner.invoke(command, list(args), env=env | extra_env, catch_exceptions=False)

    return invoke


def add_store(cli: Cli, *extra: str) -> Result:
    return cli(
        add_zid, "--store-id", DEMO_STORE, "--authorization", f"Bearer {DEMO_AUTHORIZATION}",
        "--manager-token", DEMO_MANAGER_TOKEN, "--refresh-token", DEMO_REFRESH_TOKEN, *extra,
    )  # fmt: skip


def register(cli: Cli, *extra: str, **extra_env: str) -> Result:
    args = ("register-webhooks", "--store", f"zid:{DEMO_STORE}", "--public-url", PUBLIC_URL)
    return cli(zid, *args, *extra, **extra_env)


def stored(runtime: Runtime) -> tuple[Store, dict[str, Any]]:
    with runtime.sessions() as session:
        store = find_store(session, "zid", DEMO_STORE)
    assert store is not None
    return store, runtime.cipher.open(store.credentials)


def test_it_adds_a_store_with_its_tokens_encrypted(cli: Cli, runtime: Runtime) -> None:
    result = add_store(cli, "--name", "Demo", "--timezone", "Asia/Dubai", "--locale", "en")
    assert result.exit_code == 0 and f"zid:{DEMO_STORE} saved (active)" in result.output
    store, credentials = stored(runtime)
    assert credentials == {
        "authorization": DEMO_AUTHORIZATION,  # "Bearer " is ours to add
        "manager_token": DEMO_MANAGER_TOKEN,
        "refresh_token": DEMO_REFRESH_TOKEN,
    }
    assert (store.name, store.timezone, store.locale) == ("Demo", "Asia/Dubai", "en")
    assert DEMO_MANAGER_TOKEN.encode() not in (store.credentials or b"")


def test_it_registers_one_subscription_per_event(
    cli: Cli, runtime: Runtime, state: ZidSandboxState
) -> None:
    add_store(cli)
    result = register(cli)
    assert result.exit_code == 0, result.output
    webhooks = state.webhooks(DEMO_STORE)
    assert [w.event for w in webhooks] == list(SUBSCRIBED_EVENTS)
    assert [w.target_url for w in webhooks] == [
        f"{PUBLIC_URL}/webhooks/zid/{DEMO_STORE}/{event}" for event in SUBSCRIBED_EVENTS
    ]
    assert {(w.original_id, w.conditions) for w in webhooks} == {(DEMO_APP_ID, None)}
    _, credentials = stored(runtime)
    assert {w.authorization for w in webhooks} == {credentials["webhook_secrets"][0]}
    assert all(w.id in result.output and w.event in result.output for w in webhooks)
    assert_no_credentials_in(result.output, webhooks, credentials)


def assert_no_credentials_in(
    output: str, webhooks: list[RegisteredWebhook], credentials: dict[str, Any]
) -> None:
    for secret in [w.password for w in webhooks] + credentials["webhook_secrets"]:
        assert secret and secret not in output
    assert DEMO_MANAGER_TOKEN not in output


def test_it_replaces_ours_and_keeps_the_previous_secret(
    cli: Cli, runtime: Runtime, state: ZidSandboxState
) -> None:
    add_store(cli)
    other_app = RegisteredWebhook("x1", "product.update", "https://other", "4471", None, "u", "p")
    state.add_webhook(DEMO_STORE, other_app)
    secrets = []
    for _ in range(3):
        assert register(cli).exit_code == 0
        secrets.append(stored(runtime)[1]["webhook_secrets"])
    assert [len(kept) for kept in secrets] == [1, 2, 2]
    assert secrets[2] == [secrets[2][0], secrets[1][0]] and secrets[2][0] != secrets[1][0]
    webhooks = state.webhooks(DEMO_STORE)
    assert len(webhooks) == len(SUBSCRIBED_EVENTS) + 1 and other_app in webhooks
    assert {w.authorization for w in webhooks if w.original_id == DEMO_APP_ID} == {secrets[2][0]}


def test_it_changes_nothing_on_a_dry_run(
    cli: Cli, runtime: Runtime, state: ZidSandboxState
) -> None:
    add_store(cli)
    assert register(cli).exit_code == 0
    before_webhooks, before = state.webhooks(DEMO_STORE), stored(runtime)
    result = register(cli, "--dry-run")
    assert result.exit_code == 0 and "would delete 7 existing" in result.output
    assert f"{PUBLIC_URL}/webhooks/zid/{DEMO_STORE}/customer.login" in result.output
    assert state.webhooks(DEMO_STORE) == before_webhooks
    after = stored(runtime)
    assert (after[0].token_version, after[1]) == (before[0].token_version, before[1])
    assert [seen.method for seen in state.requests()][-1:] == ["GET"]


def test_it_keeps_the_new_secret_when_tokens_are_refreshed_midway(
    cli: Cli, runtime: Runtime, state: ZidSandboxState
) -> None:
    add_store(cli)
    state.expire_token(DEMO_STORE)
    assert register(cli).exit_code == 0
    store, credentials = stored(runtime)
    assert (
        credentials["authorization"],
        credentials["manager_token"],
        credentials["refresh_token"],
    ) == state.tokens(DEMO_STORE)
    assert {w.authorization for w in state.webhooks(DEMO_STORE)} == {
        credentials["webhook_secrets"][0]
    }


def test_it_reports_api_failures_in_one_line(cli: Cli, state: ZidSandboxState) -> None:
    add_store(cli)
    state.fail_next(1, status=500, path="/managers/webhooks")
    result = register(cli)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "Error: Zid: Zid answered 500 to the webhook list request "
        "(server_error: Something went wrong.)"
    ]


def test_it_stops_when_zid_refuses_the_store(
    cli: Cli, runtime: Runtime, state: ZidSandboxState
) -> None:
    add_store(cli)
    state.expire_token(DEMO_STORE)
    state.exchange(DEMO_REFRESH_TOKEN)  # spent elsewhere
    result = register(cli)
    assert result.exit_code == 1 and "refused the refresh token" in result.output
    assert stored(runtime)[0].status == "needs_reauth"


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (add_zid, ["--store-id", "abc", "--authorization", "a", "--manager-token", "m"],
         "a number"),
        (add_zid, ["--store-id", "1", "--authorization", "a"], "--manager-token"),
        (add_zid, ["--store-id", "1", "--authorization", "a b", "--manager-token", "m"],
         "one word"),
        (add_zid, ["--store-id", "1", "--authorization", "a", "--manager-token", "m",
                   "--timezone", "Mars/Base"], "unknown time zone"),
        (add_zid, ["--store-id", "1", "--authorization", "a", "--manager-token", "m",
                   "--api-base", "ftp://x"], "http(s) URL"),
        (zid, ["register-webhooks", "--store", "3059", "--public-url", PUBLIC_URL], "store key"),
        (zid, ["register-webhooks", "--store", "salla:3059", "--public-url", PUBLIC_URL],
         "not a Zid store key"),
        (zid, ["register-webhooks", "--store", "zid:3059", "--public-url", "ftp://x"],
         "http(s) URL"),
        (zid, ["register-webhooks", "--store", "zid:3059", "--public-url", "http://relay.io"],
         "https://"),
        (zid, ["register-webhooks", "--store", "zid:3059", "--public-url", f"{PUBLIC_URL}/?a=1"],
         "bare base URL"),
        (zid, ["register-webhooks", "--store", "zid:404", "--public-url", PUBLIC_URL],
         "add it first"),
    ],
)  # fmt: skip
def test_it_explains_bad_input_without_a_traceback(
    cli: Cli, command: click.Command, args: list[str], message: str
) -> None:
    result = cli(command, *args)
    assert result.exit_code in (1, 2) and message in result.output
    assert "Traceback" not in result.output


def test_it_needs_the_app_id(cli: Cli) -> None:
    add_store(cli)
    result = register(cli, ZID_APP_ID="")
    assert result.exit_code == 2 and "ZID_APP_ID" in result.output


def test_it_accepts_a_local_http_url_for_development(cli: Cli, state: ZidSandboxState) -> None:
    add_store(cli)
    args = ("register-webhooks", "--store", f"zid:{DEMO_STORE}", "--public-url")
    assert cli(zid, *args, "http://127.0.0.1:8000/").exit_code == 0
    assert state.webhooks(DEMO_STORE)[0].target_url.startswith("http://127.0.0.1:8000/webhooks/")


def test_it_refuses_an_uninstalled_store(cli: Cli, runtime: Runtime) -> None:
    add_store(cli)
    with runtime.transaction() as session:
        store = find_store(session, "zid", DEMO_STORE)
        assert store is not None
        store.status = "uninstalled"
    result = register(cli)
    assert result.exit_code == 2 and "is uninstalled" in result.output


def test_it_keeps_a_previously_stored_secret_first_in_line_to_drop(
    cli: Cli, runtime: Runtime
) -> None:
    add_store(cli)
    with runtime.transaction() as session:
        store = find_store(session, "zid", DEMO_STORE)
        assert store is not None
        credentials = runtime.cipher.open(store.credentials)
        credentials["webhook_secrets"] = [PREVIOUS_SECRET, "Basic older"]
        store.credentials = runtime.cipher.seal(credentials)
    assert register(cli).exit_code == 0
    kept = stored(runtime)[1]["webhook_secrets"]
    assert len(kept) == 2 and kept[1] == PREVIOUS_SECRET


def test_it_triggers_a_sample_with_the_registered_credentials(
    cli: Cli, settings: Settings, serve: Callable[[Any], RunningServer]
) -> None:
    add_store(cli)
    assert register(cli).exit_code == 0
    receiver = serve(create_app(settings))
    result = cli(
        main, "trigger", "zid", "order.create", "--store", DEMO_STORE, "--customer", "42",
        "--url", receiver.url,
    )  # fmt: skip
    assert result.exit_code == 0 and ": 200 " in result.output and "accepted" in result.output
    wrong = cli(
        main, "trigger", "zid", "customer.login", "--store", DEMO_STORE, "--customer", "42",
        "--url", receiver.url, "--secret", "Basic d3Jvbmc6d3Jvbmc=",
    )  # fmt: skip
    assert wrong.exit_code == 1 and ": 401 " in wrong.output


def test_it_sets_zids_documented_conditions_on_the_order_events_only(
    cli: Cli, state: ZidSandboxState
) -> None:
    add_store(cli)
    result = register(
        cli, "--condition", "status=delivered", "--condition", "payment_method=cash on delivery",
        "--condition", "order.create:delivery_option_id=55",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    conditions = {w.event: w.conditions for w in state.webhooks(DEMO_STORE)}
    assert conditions.pop("order.create") == {
        "status": "delivered", "payment_method": "Cash On Delivery", "delivery_option_id": 55,
    }  # fmt: skip
    assert conditions.pop("order.status.update") == {
        "status": "delivered", "payment_method": "Cash On Delivery",
    }  # fmt: skip
    assert set(conditions.values()) == {None}  # null, never [], for every other event


def test_it_shows_the_conditions_on_a_dry_run(cli: Cli, state: ZidSandboxState) -> None:
    add_store(cli)
    result = register(cli, "--dry-run", "--condition", "order.status.update:status=ready")
    assert result.exit_code == 0, result.output
    assert f"{DEMO_STORE}/order.status.update when status=ready" in result.output
    assert state.webhooks(DEMO_STORE) == []


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("status=completed", "status is one of new, preparing, ready, inDelivery, delivered"),
        ("colour=red", "status, delivery_option_id and payment_method"),
        ("customer.create:status=new", "only order.create and order.status.update"),
        ("delivery_option_id=fast", "a number"),
        ("status", "not KEY=VALUE"),
    ],
)
def test_it_refuses_conditions_zid_does_not_document(
    cli: Cli, state: ZidSandboxState, condition: str, message: str
) -> None:
    add_store(cli)
    result = register(cli, "--condition", condition)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
    assert state.webhooks(DEMO_STORE) == []
