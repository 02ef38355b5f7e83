"""Every dashboard page needs a login or the token; forms need their CSRF token;
without configuration the dashboard does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import relay_env
from tests.web.ops.conftest import TOKEN, csrf_token, log_in
from web import create_app
from worker.runtime import Runtime

ROOT = Path(__file__).resolve().parents[3]
PAGES = ["/ops/", "/ops/deliveries", "/ops/inbox", "/ops/stores", "/ops/sinks"]
ACTIONS = ["/ops/sinks/1/pause", "/ops/sinks/1/resume", "/ops/logout"]


@pytest.mark.parametrize("path", PAGES)
def test_it_sends_a_visitor_to_the_login_page(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/ops/login?next=/ops")


@pytest.mark.parametrize("path", PAGES)
def test_it_shows_every_page_to_an_operator(operator: FlaskClient, path: str) -> None:
    answer = operator.get(path)
    assert answer.status_code == 200 and '<html lang="en">' in answer.get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_it_shows_every_page_to_the_token(client: FlaskClient, path: str) -> None:
    answer = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200


def test_it_refuses_a_wrong_token(client: FlaskClient) -> None:
    answer = client.get("/ops/", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert answer.status_code == 302


def test_it_refuses_a_wrong_password(client: FlaskClient) -> None:
    assert log_in(client, "wrong password") == 401
    assert client.get("/ops/").status_code == 302


def test_it_refuses_an_unknown_user(client: FlaskClient) -> None:
    token = csrf_token(client)
    answer = client.post(
        "/ops/login", data={"user": "mallory", "password": "x", "csrf_token": token}
    )
    assert answer.status_code == 401


def test_it_throttles_repeated_failed_logins(client: FlaskClient) -> None:
    for _ in range(5):
        assert log_in(client, "guess") == 401
    assert log_in(client) == 429  # even the right password waits out the window


def test_it_sets_a_strict_http_only_cookie(client: FlaskClient) -> None:
    csrf_token(client)
    cookie = client.get_cookie("relay_ops", path="/ops")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert not cookie.secure  # localhost: plain HTTP is the way in


def test_it_marks_the_cookie_secure_off_localhost(client: FlaskClient) -> None:
    answer = client.get("/ops/login", base_url="http://relay.example.com")
    assert "Secure" in answer.headers["Set-Cookie"]


def test_it_refuses_a_login_without_its_csrf_token(client: FlaskClient) -> None:
    client.get("/ops/login")
    answer = client.post("/ops/login", data={"user": "ana", "password": "x"})
    assert answer.status_code == 400


@pytest.mark.parametrize("path", ACTIONS)
def test_it_refuses_an_action_without_a_csrf_token(operator: FlaskClient, path: str) -> None:
    assert operator.post(path).status_code == 400
    assert operator.post(path, data={"csrf_token": "forged"}).status_code == 400


def test_it_logs_out(operator: FlaskClient) -> None:
    token = csrf_token(operator, "/ops/")
    assert operator.post("/ops/logout", data={"csrf_token": token}).status_code == 303
    assert operator.get("/ops/").status_code == 302


def test_it_does_not_follow_a_next_page_off_the_dashboard(client: FlaskClient) -> None:
    token = csrf_token(client)
    answer = client.post(
        "/ops/login?next=//evil.example/ops",
        data={"user": "ana", "password": "correct horse battery staple", "csrf_token": token},
    )
    assert answer.headers["Location"] == "/ops/"


@pytest.mark.parametrize("path", ["/ops/", "/ops/login", "/ops/deliveries", "/ops/static/ops.css"])
def test_it_is_not_there_unless_configured(runtime: Runtime, tmp_path: Path, path: str) -> None:
    client = create_app(runtime.settings).test_client()
    assert client.get(path).status_code == 404
    assert client.post(path).status_code in (404, 405)


def test_it_loads_no_dashboard_code_unless_configured(runtime: Runtime, tmp_path: Path) -> None:
    """The receiver process stays as small as it was: nothing of web.ops or worker.ops."""
    env = relay_env(tmp_path, runtime.settings.database_url, runtime.settings.broker_url)
    code = (
        "import sys; from web import create_app; create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith(('web.ops', 'worker.ops'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], env=os.environ | env, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"


def test_it_lets_the_token_act_without_a_csrf_token(runtime: Runtime, client: FlaskClient) -> None:
    """A script's request carries no cookie a browser could replay: the token is enough."""
    answer = client.post("/ops/sinks/1/pause", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 303
