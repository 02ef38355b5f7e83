"""The CLI against a real database: what a merchant's engineer types."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import SALLA_SECRET, relay_env
from web import create_app
from worker.cli.app import main
from worker.cli.serve import _declare_queues
from worker.config import Settings, load_settings
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret


@pytest.fixture
def env(runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str) -> dict[str, str]:
    return relay_env(tmp_path, settings.database_url, redis_url)


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., Result]:
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env, catch_exceptions=False)


def add_store(cli: Callable[..., Result], *extra: str) -> Result:
    return cli(
        "stores", "add", "salla", "--merchant-id", "1234509876",
        "--access-token", "secret-access-token", "--refresh-token", "secret-refresh", *extra,
    )  # fmt: skip


def test_it_registers_and_lists_a_store_without_secrets(cli: Callable[..., Result]) -> None:
    result = add_store(cli, "--webhook-secret", "store-webhook-secret", "--name", "Demo")
    assert result.exit_code == 0 and "salla:1234509876 saved (active)" in result.output
    listing = cli("stores", "list")
    assert "salla:1234509876" in listing.output and "active" in listing.output
    for secret in ("secret-access-token", "secret-refresh", "store-webhook-secret"):
        assert secret not in listing.output


def test_it_updates_a_store_when_added_again(cli: Callable[..., Result]) -> None:
    add_store(cli)
    assert add_store(cli, "--timezone", "Asia/Dubai").exit_code == 0
    assert "Asia/Dubai" in cli("stores", "list").output


def test_it_subscribes_a_signed_webhook_sink(cli: Callable[..., Result]) -> None:
    add_store(cli)
    secret = new_secret()
    result = cli(
        "sinks", "add", "--store", "salla:1234509876", "--kinds", "points.balance_changed",
        "webhook", "--url", "https://crm.example.com/hook?token=abc", "--secret", secret,
    )  # fmt: skip
    assert result.exit_code == 0 and "added to salla:1234509876" in result.output
    listing = cli("sinks", "list").output
    assert "https://crm.example.com/hook" in listing and "token=abc" not in listing
    assert secret not in listing and "points.balance_changed" in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stores", "add", "salla", "--merchant-id", "abc", "--access-token", "x"], "a number"),
        (["stores", "add", "salla", "--merchant-id", "1"], "--access-token"),
        (["stores", "add", "salla", "--merchant-id", "1", "--access-token", "x",
          "--timezone", "Mars/Base"], "unknown time zone"),
        (["stores", "add", "salla", "--merchant-id", "1", "--access-token", "x",
          "--api-base", "ftp://x"], "http(s) URL"),
        (["sinks", "add", "--store", "nocolon", "webhook", "--url", "https://x", "--secret", "s"],
         "store key"),
        (["sinks", "add", "--store", "salla:1", "--kinds", "points.nope", "webhook", "--url",
          "https://x", "--secret", "s"], "choose from"),
        (["sinks", "add", "--store", "salla:404", "webhook", "--url", "https://x.example",
          "--secret", new_secret()], "add it first"),
        (["sinks", "add", "--store", "salla:1", "webhook", "--url", "https://x",
          "--secret", "not-a-whsec"], "whsec_"),
        (["trigger", "salla", "order.created", "--merchant", "1"], "--customer"),
        (["trigger", "salla", "order.nope", "--merchant", "1"], "choose from"),
        (["trigger", "nowhere", "order.created", "--store", "1"], "nowhere"),
    ],
)  # fmt: skip
def test_it_explains_bad_input_without_a_traceback(
    cli: Callable[..., Result], args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code in (1, 2) and message in result.output
    assert "Traceback" not in result.output


def test_it_triggers_a_signed_sample_webhook(
    cli: Callable[..., Result], settings: Settings, serve: Callable[[Any], RunningServer]
) -> None:
    add_store(cli)
    receiver = serve(create_app(settings))
    result = cli(
        "trigger", "salla", "order.status.updated", "--merchant", "1234509876",
        "--customer", "42", "--url", receiver.url, "--secret", SALLA_SECRET,
    )  # fmt: skip
    assert result.exit_code == 0 and ": 200 " in result.output and "accepted" in result.output
    wrong = cli(
        "trigger", "salla", "customer.login", "--merchant", "1234509876", "--customer", "42",
        "--url", receiver.url, "--secret", "wrong",
    )  # fmt: skip
    assert wrong.exit_code == 1 and ": 401 " in wrong.output


def test_it_signs_with_the_stored_secret_by_default(
    cli: Callable[..., Result], settings: Settings, serve: Callable[[Any], RunningServer]
) -> None:
    add_store(cli, "--webhook-secret", "store-own-secret")
    receiver = serve(create_app(settings))
    result = cli(
        "trigger", "salla", "customer.login", "--store", "1234509876", "--customer", "42",
        "--url", receiver.url,
    )  # fmt: skip
    assert result.exit_code == 0 and ": 200 " in result.output


def test_it_reports_an_unreachable_receiver(cli: Callable[..., Result]) -> None:
    result = cli(
        "trigger", "salla", "customer.login", "--merchant", "1", "--customer", "2",
        "--url", "http://127.0.0.1:9", "--secret", "s",
    )  # fmt: skip
    assert result.exit_code == 1 and "could not reach" in result.output


def add_webhook_sink(cli: Callable[..., Result], url: str, secret: str, *rules: str) -> Result:
    return cli("sinks", "add", "--store", "salla:1234509876", *rules, "webhook",
               "--url", url, "--secret", secret)  # fmt: skip


def sink_id(added: Result) -> str:
    return added.output.split()[1]  # "sink 7 (webhook) added to …"


def test_it_stores_reaction_rules_for_a_sink(cli: Callable[..., Result]) -> None:
    add_store(cli)
    result = add_webhook_sink(
        cli, "https://x.example/h", new_secret(),
        "--only", "increases", "--min-change", "10", "--quiet-hours", "22:00-08:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listing = cli("sinks", "list").output
    assert '"direction": "increase"' in listing and '"start": "22:00"' in listing


def test_it_rejects_bad_quiet_hours(cli: Callable[..., Result]) -> None:
    add_store(cli)
    result = add_webhook_sink(cli, "https://x.example/h", new_secret(), "--quiet-hours", "late")
    assert result.exit_code == 2 and "quiet_hours" in result.output


def test_it_disables_and_enables_a_sink(cli: Callable[..., Result]) -> None:
    add_store(cli)
    added = sink_id(add_webhook_sink(cli, "https://x.example/h", new_secret()))
    assert cli("sinks", "disable", added, "--reason", "maintenance").exit_code == 0
    assert "disabled (maintenance)" in cli("sinks", "list").output
    assert cli("sinks", "enable", added).exit_code == 0
    assert "enabled" in cli("sinks", "list").output
    missing = cli("sinks", "enable", "999999")
    assert missing.exit_code == 1 and "no sink 999999" in missing.output


def test_it_sends_a_sample_delivery_to_a_sink(
    cli: Callable[..., Result], serve: Callable[[Any], RunningServer]
) -> None:
    secret = new_secret()
    capture = create_capture_app(secret)
    endpoint = serve(capture)
    add_store(cli)
    added = sink_id(add_webhook_sink(cli, f"{endpoint.url}/hook", secret))
    result = cli("sinks", "test", added)
    assert result.exit_code == 0 and "200" in result.output
    [received] = capture_log(capture).received()
    assert received.verified and received.data["balance_after"] == 1000


def test_it_reports_a_failing_sink_test(
    cli: Callable[..., Result], serve: Callable[[Any], RunningServer]
) -> None:
    secret = new_secret()
    endpoint = serve(create_capture_app(secret, fail_first=1, fail_status=503))
    add_store(cli)
    added = sink_id(add_webhook_sink(cli, f"{endpoint.url}/hook", secret))
    result = cli("sinks", "test", added)
    assert result.exit_code == 1 and "TransientError" in result.output and "503" in result.output


def test_run_creates_the_embedded_brokers_queues_before_starting_anything(
    tmp_path: Path,
) -> None:
    # kombu's SQLite transport would otherwise have the worker, beat and web race
    # to insert the same queue row on first use, and the loser dies.
    env = relay_env(tmp_path, f"sqlite:///{tmp_path}/relay.sqlite3", "")
    env.pop("REDIS_URL")
    settings = load_settings(env)
    assert settings.broker_url.startswith("sqla+sqlite")
    for _ in range(2):  # idempotent: every start declares them again
        _declare_queues(settings)
    with sqlite3.connect(tmp_path / "broker.sqlite3") as broker:
        names = [name for (name,) in broker.execute("SELECT name FROM kombu_queue ORDER BY name")]
    assert names == ["deliveries", "events", "refresh"]
