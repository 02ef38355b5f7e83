"""The dashboard with one operator configured, on the test's database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from tests.conftest import relay_env
from web import create_app
from worker.config import Settings, load_settings
from worker.runtime import Runtime

OPERATOR, PASSWORD = "ana", "correct horse battery staple"
TOKEN = "ops-token-for-scripts-0123456789abcdef"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def ops_settings(runtime: Runtime, tmp_path: Path, **extra: str) -> Settings:
    settings = runtime.settings
    env = relay_env(
        tmp_path,
        settings.database_url,
        settings.broker_url,
        RELAY_OPS_USERS=f"{OPERATOR}:{generate_password_hash(PASSWORD)}",
        RELAY_OPS_TOKEN=TOKEN,
        **extra,
    )
    return load_settings(env)


@pytest.fixture
def ops_app(runtime: Runtime, tmp_path: Path) -> Flask:
    return create_app(ops_settings(runtime, tmp_path))


@pytest.fixture
def client(ops_app: Flask) -> FlaskClient:
    return ops_app.test_client()


def csrf_token(client: FlaskClient, path: str = "/ops/login") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: FlaskClient, password: str = PASSWORD) -> int:
    token = csrf_token(client)
    answer = client.post(
        "/ops/login", data={"user": OPERATOR, "password": password, "csrf_token": token}
    )
    return answer.status_code


@pytest.fixture
def operator(client: FlaskClient) -> FlaskClient:
    """A client logged in as the operator."""
    assert log_in(client) == 303
    return client
