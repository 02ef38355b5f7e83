"""``stores add shopify`` against a real database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import relay_env
from tests.worker.platforms.appstle_support import WHSEC, WHSEC_PREVIOUS
from worker.config import Settings
from worker.platforms.shopify.cli import add_shopify
from worker.runtime import Runtime
from worker.sandbox.appstle import DEMO_API_KEY, DEMO_SHOP
from worker.storage.models import Store
from worker.stores import find_store

Cli = Callable[..., Result]


@pytest.fixture
def cli(runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str) -> Cli:
    env = relay_env(tmp_path, settings.database_url, redis_url)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(add_shopify, list(args), env=env, catch_exceptions=False)

    return invoke


def add(cli: Cli, *extra: str, shop: str = DEMO_SHOP) -> Result:
    return cli("--shop", shop, "--appstle-api-key", DEMO_API_KEY, *extra)


def stored(runtime: Runtime) -> tuple[Store, dict[str, Any]]:
    with runtime.sessions() as session:
        store = find_store(session, "shopify", DEMO_SHOP)
    assert store is not None
    return store, runtime.cipher.open(store.credentials)


def test_it_adds_a_shop_with_its_secrets_encrypted(cli: Cli, runtime: Runtime) -> None:
    result = add(
        cli, "--shop", DEMO_SHOP.upper(), "--webhook-secret", "shpss_own",
        "--appstle-webhook-secret", WHSEC, "--appstle-webhook-secret", WHSEC_PREVIOUS,
        "--appstle-api-base", "https://appstle.example/", "--name", "Demo",
        "--timezone", "America/Toronto", "--locale", "en-CA",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"store shopify:{DEMO_SHOP} saved (active)" in result.output
    store, credentials = stored(runtime)
    assert credentials == {
        "appstle_api_key": DEMO_API_KEY,
        "webhook_secrets": ["shpss_own"],
        "appstle_webhook_secrets": [WHSEC, WHSEC_PREVIOUS],
    }
    assert (store.api_base, store.name, store.timezone, store.locale) == (
        "https://appstle.example", "Demo", "America/Toronto", "en-CA",
    )  # fmt: skip
    assert DEMO_API_KEY.encode() not in (store.credentials or b"")
    assert WHSEC not in result.output and DEMO_API_KEY not in result.output


def test_it_stores_appstle_secrets_in_their_whsec_form(cli: Cli, runtime: Runtime) -> None:
    assert add(cli, "--appstle-webhook-secret", WHSEC.removeprefix("whsec_")).exit_code == 0
    assert stored(runtime)[1]["appstle_webhook_secrets"] == [WHSEC]


def test_it_keeps_secrets_not_given_again_and_reactivates(cli: Cli, runtime: Runtime) -> None:
    assert add(cli, "--appstle-webhook-secret", WHSEC).exit_code == 0
    with runtime.transaction() as session:
        session.get_one(Store, stored(runtime)[0].id).status = "needs_reauth"
    assert cli("--shop", DEMO_SHOP, "--appstle-api-key", "new-key").exit_code == 0
    store, credentials = stored(runtime)
    assert store.status == "active"
    assert credentials == {"appstle_api_key": "new-key", "appstle_webhook_secrets": [WHSEC]}


@pytest.mark.parametrize(
    "args",
    [
        ("--shop", "my-shop.example.com", "--appstle-api-key", "k"),
        ("--shop", "my shop.myshopify.com", "--appstle-api-key", "k"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", " "),
        ("--shop", DEMO_SHOP),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--appstle-webhook-secret", "whsec_!!"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--appstle-webhook-secret", "whsec_"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--appstle-api-base", "ftp://x"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--timezone", "Mars/Olympus"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--locale", "english!"),
        ("--shop", DEMO_SHOP, "--appstle-api-key", "k", "--webhook-secret", "two words"),
    ],
)
def test_it_refuses_bad_input_in_one_line(
    cli: Cli, runtime: Runtime, args: tuple[str, ...]
) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    with runtime.sessions() as session:
        assert find_store(session, "shopify", DEMO_SHOP) is None
