"""What operators deploy: Flower behind a login, pinned versions for every install."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def compose_service(name: str) -> str:
    """The lines of one service in docker-compose.yml (no YAML parser among the deps)."""
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    start = lines.index(f"  {name}:")
    end = next(i for i in range(start + 1, len(lines)) if re.match(r"  \S|\S", lines[i]))
    return "\n".join(lines[start:end])


def test_compose_puts_flower_behind_a_login_on_loopback() -> None:
    flower = compose_service("flower")
    # ":?" makes compose refuse to start without the variable.
    assert re.search(r"FLOWER_BASIC_AUTH: \$\{FLOWER_BASIC_AUTH:\?", flower)
    assert 'ports: ["127.0.0.1:5555:5555"]' in flower
    assert "<<: *relay-env" in flower  # the service's own settings are kept


def test_every_install_uses_the_constraints_file() -> None:
    pinned = (ROOT / "constraints.txt").read_text().splitlines()
    names = {line.split("==")[0].lower() for line in pinned if "==" in line}
    for dependency in ("flask", "celery", "httpx", "sqlalchemy", "gunicorn", "cryptography"):
        assert dependency in names
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_flower_asks_for_the_login(tmp_path: Path, redis_url: str) -> None:
    pytest.importorskip("flower")  # the `ops` extra
    port = free_port()
    env = os.environ | {
        "RELAY_DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "FLOWER_BASIC_AUTH": "ops:a-long-flower-password",
    }
    command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "flower"]
    command += [f"--port={port}", "--address=127.0.0.1"]
    flower = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                anonymous = httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and flower.poll() is None
                time.sleep(0.3)
        assert anonymous.status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        logged_in = httpx.get(url, auth=("ops", "a-long-flower-password"), timeout=5)
        assert logged_in.status_code == 200
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
