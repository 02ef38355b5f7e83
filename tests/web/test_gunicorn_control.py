"""Gunicorn's control socket: off by default (its default path is shared by every
gunicorn of the same user), or at a path of the instance's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import relay_env
from tests.web.conftest import ROOT, free_port
from worker.runtime import Runtime


def start(env: dict[str, str], home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", "web:create_app()"]
    environment = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    environment |= env | {"HOME": str(home), "RELAY_WEB_WORKER_CLASS": "sync"}
    server = subprocess.Popen(command, cwd=ROOT, env=environment, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}/healthz", time.monotonic() + 60
    while True:
        assert server.poll() is None and time.monotonic() < deadline
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)


def stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_opens_no_shared_control_socket(runtime: Runtime, tmp_path: Path) -> None:
    env = relay_env(tmp_path, runtime.settings.database_url, runtime.settings.broker_url)
    first, _ = start(env, tmp_path)
    second, _ = start(env, tmp_path)  # the same user's second instance
    try:
        assert not (tmp_path / ".gunicorn" / "gunicorn.ctl").exists()
    finally:
        stop(first)
        stop(second)
    own = tmp_path / "relay-web.ctl"
    server, _ = start(env | {"RELAY_GUNICORN_CONTROL_SOCKET": str(own)}, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not own.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert own.is_socket() and not (tmp_path / ".gunicorn" / "gunicorn.ctl").exists()
    finally:
        stop(server)
