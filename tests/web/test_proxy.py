"""The production topology: nginx with the committed ``deploy/nginx/nginx.conf`` in
front of gunicorn (gevent, PostgreSQL), both real processes on loopback. Only the
upstream address, the listening port and the pid file are changed for the test.

Needs nginx (``apt-get install nginx``; ``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SALLA_SECRET
from tests.factories import add_salla_store, encode, salla_event
from tests.web.conftest import ROOT, Served, free_port
from tests.web.raw_http import (
    SlowClients,
    chunked,
    exchange,
    figures,
    request,
    signed_salla,
    timed_webhooks,
)
from worker.runtime import Runtime

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = ROOT / "deploy" / "nginx" / "nginx.conf"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
    pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed"),
]


def render(upstream: str, port: int, directory: Path) -> Path:
    text = CONFIG.read_text()
    for old, new in (
        ("server web:8000;", f"server {upstream};"),
        ("listen 8080 ", f"listen 127.0.0.1:{port} "),
        ("pid /tmp/nginx.pid;", f"pid {directory}/nginx.pid;"),
        ("user nginx;", ""),  # the official image's user; a distribution's package has another
    ):
        assert old in text, f"{CONFIG} no longer says {old!r}"
        text = text.replace(old, new)
    rendered = directory / "nginx.conf"
    rendered.write_text(text)
    return rendered


@pytest.fixture
def proxied(served: Served, runtime: Runtime, tmp_path: Path) -> Iterator[str]:
    """nginx in front of the served receiver; yields nginx's URL."""
    upstream = served[0].removeprefix("http://")
    port = free_port()
    config = render(upstream, port, tmp_path)
    command = [NGINX, "-c", str(config), "-p", str(tmp_path)]
    command += ["-g", f"daemon off; error_log {tmp_path}/nginx-error.log;"]
    proxy = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _answers(f"{url}/healthz"):
            assert proxy.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        add_salla_store(runtime)
        yield url
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_signed_webhooks_pass_through_the_proxy_whole(proxied: str) -> None:
    body = encode(salla_event("customer.updated", id=1))
    headers = signed_salla(body, SALLA_SECRET)
    answer = httpx.post(f"{proxied}/webhooks/salla", content=body, headers=headers)
    assert (answer.status_code, answer.json()["status"]) == (200, "accepted")
    body = encode(salla_event("customer.updated", id=2))
    raw = request(
        "/webhooks/salla",
        {"Transfer-Encoding": "chunked", **signed_salla(body, SALLA_SECRET)},
        chunked(body, 5),
    )
    assert exchange(proxied, raw) == 200  # re-framed with a Content-Length upstream
    assert httpx.get(f"{proxied}/metrics").status_code == 404  # internal only


def test_the_proxy_refuses_oversized_and_malformed_bodies(proxied: str) -> None:
    big = encode(salla_event("customer.updated", id=1, blob="x" * (256 * 1024)))
    headers = {"Transfer-Encoding": "chunked", **signed_salla(big, SALLA_SECRET)}
    assert exchange(proxied, request("/webhooks/salla", headers, chunked(big))) == 413
    headers = {"Content-Length": str(len(big)), **signed_salla(big, SALLA_SECRET)}
    assert exchange(proxied, request("/webhooks/salla", headers, big)) == 413
    bad = request("/webhooks/salla", {"Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n")
    assert exchange(proxied, bad) == 400


@pytest.mark.timeout(180)
def test_slow_clients_are_held_by_the_proxy_not_by_gunicorn(
    proxied: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # From other hosts than the platform's: nginx holds at most 1000 per host.
    attackers = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    with SlowClients(proxied, 2100, sources=attackers).held() as slow:
        started = time.monotonic()
        statuses, latencies = timed_webhooks(proxied, 40, SALLA_SECRET)
        held_for = time.monotonic() - started
        answered = slow.collect_answers(within=1)
    assert statuses == [200] * 40
    assert answered[-1] == 2100  # all still held by nginx, none cut or refused yet
    with capsys.disabled():
        sys.stdout.write(
            f"\nnginx, 2100 slow clients held {held_for:.1f} s: 40 signed webhooks "
            f"answered, {figures(latencies)}\n"
        )


def test_one_host_holds_at_most_1000_connections(proxied: str) -> None:
    with SlowClients(proxied, 1100, sources=("127.0.0.5",)).held() as slow:
        answered = slow.collect_answers(within=3)
    assert answered.get(429, 0) == 100 and answered[-1] == 1000
