"""The receiver as production serves it: gunicorn with ``web.gunicorn_conf`` as a
real process, on the test's database and Redis, reached over loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import relay_env
from worker.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
Served = tuple[str, Path]  # the receiver's URL, gunicorn's log file


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gunicorn(runtime: Runtime, tmp_path: Path, **extra: str) -> Iterator[Served]:
    """The receiver under gunicorn (``extra``: environment variables); yields URL and log."""
    settings = runtime.settings
    env = relay_env(tmp_path, settings.database_url, settings.broker_url, **extra)
    port, log = free_port(), tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", "--error-logfile", str(log), "web:create_app()"]
    server = subprocess.Popen(command, cwd=ROOT, env=os.environ | env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/healthz"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def served(runtime: Runtime, tmp_path: Path) -> Iterator[Served]:
    """The receiver under gunicorn with the production configuration."""
    with gunicorn(runtime, tmp_path) as running:
        yield running


@pytest.fixture
def serve_gunicorn(runtime: Runtime, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start the receiver under gunicorn with extra environment variables."""
    with ExitStack() as stack:
        yield lambda **extra: stack.enter_context(gunicorn(runtime, tmp_path, **extra))
