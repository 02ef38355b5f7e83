"""The CLI as an operator meets it: outbound URL policy, secrets from files and the
environment, one readable line instead of a traceback, and no migration unless asked."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select

from tests.conftest import relay_env
from worker.cli.app import main
from worker.config import Settings
from worker.runtime import Runtime
from worker.signing import new_secret
from worker.storage.db import make_engine
from worker.storage.models import Sink, Store

Cli = Callable[..., Result]
STORE = "salla:1234509876"


@pytest.fixture
def env(runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str) -> dict[str, str]:
    """The operator's environment: no allowance for private URLs."""
    return relay_env(tmp_path, settings.database_url, redis_url, RELAY_ALLOW_PRIVATE_URLS="0")


def invoke(env: dict[str, str], *args: str) -> Result:
    # catch_exceptions=False: a traceback would fail the test instead of being printed.
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    return lambda *args: invoke(env, *args)


def add_store(cli: Cli, *extra: str) -> Result:
    return cli("stores", "add", "salla", "--merchant-id", "1234509876", *extra)


def one_error_line(result: Result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://127.0.0.1:6379/", "loopback"),
        ("https://10.0.0.8/hook", "private"),
        ("https://0x7f000001/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("http://hooks.example.com/hook", "only https"),
    ],
)
def test_it_refuses_a_sink_url_outside_the_policy(cli: Cli, url: str, reason: str) -> None:
    add_store(cli, "--access-token", "tok")
    result = cli(
        "sinks", "add", "--store", STORE, "webhook", "--url", url, "--secret", new_secret()
    )
    assert result.exit_code == 2 and reason in one_error_line(result)
    assert "meta-data" not in result.output


def test_it_refuses_a_private_api_base(cli: Cli, runtime: Runtime) -> None:
    result = add_store(cli, "--access-token", "tok", "--api-base", "https://192.168.0.10/api")
    assert result.exit_code == 2 and "private" in one_error_line(result)
    with runtime.sessions() as session:
        assert session.scalars(select(Store)).all() == []
    hubspot = cli(
        "sinks", "add", "--store", STORE, "hubspot", "--token", "pat-na1-0123456789abcdef",
        "--api-base", "https://169.254.169.254",
    )  # fmt: skip
    assert hubspot.exit_code != 0 and "link-local" in hubspot.output


def test_it_reads_secrets_from_files_and_the_environment(
    cli: Cli, env: dict[str, str], runtime: Runtime, tmp_path: Path
) -> None:
    token_file = tmp_path / "access-token"
    token_file.write_text("file-access-token\n")
    assert add_store(cli, "--access-token-file", str(token_file)).exit_code == 0
    with runtime.sessions() as session:
        store = session.scalars(select(Store)).one()
    assert runtime.cipher.open(store.credentials)["access_token"] == "file-access-token"

    from_env = invoke(env | {"SALLA_ACCESS_TOKEN": "env-access-token"}, "stores", "add", "salla",
                      "--merchant-id", "1234509876")  # fmt: skip
    assert from_env.exit_code == 0
    with runtime.sessions() as session:
        store = session.scalars(select(Store)).one()
    assert runtime.cipher.open(store.credentials)["access_token"] == "env-access-token"

    secret, secret_file = new_secret(), tmp_path / "sink-secret"
    secret_file.write_text(secret)
    added = cli("sinks", "add", "--store", STORE, "webhook", "--url", "https://hooks.example.com/h",
                "--secret-file", str(secret_file))  # fmt: skip
    assert added.exit_code == 0, added.output
    with runtime.sessions() as session:
        sink = session.scalars(select(Sink)).one()
    assert runtime.cipher.open(sink.config)["secret"] == secret


def test_it_asks_for_a_secret_given_no_way(cli: Cli) -> None:
    result = add_store(cli)
    assert result.exit_code == 2 and "--access-token-file" in one_error_line(result)


def test_it_refuses_a_short_signing_secret(cli: Cli) -> None:
    add_store(cli, "--access-token", "tok")
    short = "whsec_" + base64.b64encode(b"3by").decode()
    result = cli("sinks", "add", "--store", STORE, "webhook", "--url", "https://h.example.com/h",
                 "--secret", short)  # fmt: skip
    assert result.exit_code == 2 and "at least 24" in one_error_line(result)


def test_it_explains_a_bad_colour_in_one_line(cli: Cli) -> None:
    result = cli("preview", "--kind", "points.balance_changed", "--primary-color", "red")
    assert result.exit_code == 2 and "not a colour" in one_error_line(result)


def test_it_explains_an_unsupported_database_in_one_line(env: dict[str, str]) -> None:
    result = invoke(env | {"DATABASE_URL": "mysql://relay:pw@db/relay"}, "stores", "list")
    assert result.exit_code == 1 and "DATABASE_URL" in one_error_line(result)
    assert "pw" not in result.output


def test_it_explains_a_database_that_is_down_in_one_line(env: dict[str, str]) -> None:
    down = env | {"DATABASE_URL": "postgresql://relay@127.0.0.1:9/relay"}
    result = invoke(down, "migrate")
    assert result.exit_code == 1 and "database unreachable" in one_error_line(result)


def test_it_explains_credentials_no_key_opens_in_one_line(cli: Cli, env: dict[str, str]) -> None:
    add_store(cli, "--access-token", "tok")
    cli("sinks", "add", "--store", STORE, "webhook", "--url", "https://h.example.com/h",
        "--secret", new_secret())  # fmt: skip
    other_key = env | {"RELAY_SECRET_KEY": Fernet.generate_key().decode()}
    result = invoke(other_key, "sinks", "list")
    assert result.exit_code == 1 and "cannot be decrypted" in one_error_line(result)


def test_only_migrate_changes_the_schema(tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    env = relay_env(tmp_path, url, redis_url)
    listed = invoke(env, "stores", "list")
    assert listed.exit_code == 1 and "run `loyalty-relay migrate`" in one_error_line(listed)
    engine = make_engine(url)
    assert "stores" not in inspect(engine).get_table_names()
    assert invoke(env, "migrate").exit_code == 0
    assert "stores" in inspect(engine).get_table_names()
    engine.dispose()
    assert invoke(env, "stores", "list").exit_code == 0


def test_it_prints_a_fernet_key(cli: Cli) -> None:
    key = cli("keygen").output.strip()
    Fernet(key.encode())  # raises unless it is one
    assert cli("keygen", "--whsec").output.startswith("whsec_")
