"""``loyalty-relay demo``: the whole path on one machine, narrated.

Starts the Salla sandbox and a capture sink in this process, runs the service
embedded (``loyalty-relay run`` in a child process, SQLite everywhere),
registers the sandbox store and the sink, fires signed webhooks and prints
what reached the sink.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from worker import runtime as runtime_module
from worker.config import load_settings
from worker.platforms.base import StoreUpdate
from worker.platforms.salla import samples
from worker.points import CHANGE_KINDS
from worker.sandbox.capture import CapturedDelivery, CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import (
    DEMO_ACCESS_TOKEN,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_MERCHANT,
    DEMO_REFRESH_TOKEN,
    SallaSandboxState,
    create_salla_sandbox,
)
from worker.sandbox.server import serve_in_thread
from worker.sinks.signing import new_secret
from worker.storage.migrate import upgrade
from worker.storage.models import Sink
from worker.stores import save_store

Echo = Callable[[str], None]
WEBHOOK_SECRET = "demo-webhook-secret"
WAIT_SECONDS = 60.0


def run_demo(*, port: int, keep: bool, echo: Echo) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="loyalty-relay-demo-"))
    salla = SallaSandboxState.with_demo_store()
    sink_secret = new_secret()
    capture_app = create_capture_app(sink_secret)
    with (
        serve_in_thread(create_salla_sandbox(salla)) as api,
        serve_in_thread(capture_app) as sink,
    ):
        env = _environment(data_dir, api.url)
        _register(env, api.url, f"{sink.url}/loyalty", sink_secret, echo)
        port = port or _free_port()
        with _service(env, port, echo):
            _story(f"http://127.0.0.1:{port}", salla, capture_log(capture_app), echo)
    if keep:
        echo(f"data kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


def _environment(data_dir: Path, api_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    return env | {
        "RELAY_DATA_DIR": str(data_dir),
        "RELAY_SECRET_KEY": "demo-secret-key",
        "SALLA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SALLA_OAUTH_TOKEN_URL": f"{api_url}/oauth2/token",
        "SALLA_CLIENT_ID": DEMO_CLIENT_ID,
        "SALLA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "RELAY_DEBOUNCE_SECONDS": "1",
        "RELAY_SETTLE_DELAYS": "",
        "RELAY_LOG_LEVEL": "WARNING",
    }


def _register(env: dict[str, str], api_url: str, sink_url: str, secret: str, echo: Echo) -> None:
    runtime = runtime_module.configure(load_settings(env))
    upgrade(runtime.engine)
    credentials = {"access_token": DEMO_ACCESS_TOKEN, "refresh_token": DEMO_REFRESH_TOKEN}
    with runtime.transaction() as session:
        store = save_store(
            runtime, session, "salla", DEMO_MERCHANT,
            StoreUpdate(status="active", credentials=credentials), api_base=api_url,
        )  # fmt: skip
        session.add(
            Sink(
                store_id=store.id,
                kind="webhook",
                config=runtime.cipher.seal({"url": sink_url, "secret": secret}),
                kinds=list(CHANGE_KINDS),
            )
        )
    runtime_module.configure_none()
    echo(f"• Salla sandbox at {api_url}: store salla:{DEMO_MERCHANT} registered")
    echo(f"• capture sink at {sink_url} (Standard Webhooks, verifies every signature)")


@contextmanager
def _service(env: dict[str, str], port: int, echo: Echo) -> Iterator[None]:
    command = [sys.executable, "-m", "worker.cli", "run", "--port", str(port)]
    log_path = Path(env["RELAY_DATA_DIR"]) / "service.log"
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/healthz", child)
        echo(f"• loyalty-relay running embedded on http://127.0.0.1:{port} (SQLite, no Redis)")
        yield
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n--- service log ---\n{_tail(log_path)}") from None
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=30)


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_bytes()[-size:].decode(errors="replace")


def _wait_until_up(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the service exited early")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError("the service did not start within a minute")


def _story(base: str, salla: SallaSandboxState, log: CaptureLog, echo: Echo) -> None:
    echo("")
    body = _fire(base, "order.status.updated", echo)
    _show(_wait_for(log, 1), echo)
    echo("\nThe loyalty app credits 250 points for the order; Salla sends order.updated:")
    salla.add_points(DEMO_MERCHANT, DEMO_CUSTOMER, 250, expires_in_days=180)
    _fire(base, "order.updated", echo)
    _show(_wait_for(log, 2), echo)
    echo("\nSalla retries the first delivery (same bytes):")
    _post(base, body, echo, "order.status.updated (retry)")
    echo("\nThe customer logs in; points have not changed:")
    _fire(base, "customer.login", echo)
    time.sleep(4)
    echo(f"  sink deliveries so far: {len(log.received())} (nothing new: no change, no message)")
    echo(f"\nSalla API calls made: {len(salla.requests())}; sink received {len(log.received())} "
         f"signed deliveries, {len(log.duplicates())} duplicates.")  # fmt: skip


def _fire(base: str, event: str, echo: Echo) -> bytes:
    document = samples.sample_event(event, DEMO_MERCHANT, DEMO_CUSTOMER)
    body = samples.encode(document)
    _post(base, body, echo, event)
    return body


def _post(base: str, body: bytes, echo: Echo, label: str) -> None:
    headers = samples.signed_headers(body, WEBHOOK_SECRET)
    response = httpx.post(f"{base}/webhooks/salla", content=body, headers=headers, timeout=10)
    echo(f"→ POST /webhooks/salla  {label}: {response.status_code} {response.json()['status']}")


def _wait_for(log: CaptureLog, count: int) -> CapturedDelivery:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        received = log.received()
        if len(received) >= count:
            return received[count - 1]
        time.sleep(0.2)
    raise RuntimeError(f"no delivery #{count} reached the sink within a minute")


def _show(delivery: CapturedDelivery, echo: Echo) -> None:
    data = delivery.data
    echo(f"← sink got {delivery.type} (webhook-id {delivery.id}, signature verified: "
         f"{delivery.verified})")  # fmt: skip
    balance = f"{data['balance_before']} → {data['balance_after']}"
    echo(f"    {data['store']} customer {data['customer_id']}: balance {balance}, "
         f"pending {data['pending']}")  # fmt: skip
    echo(f"    next expiry {data['next_expiry_date']} ({data['next_expiry_points']} points)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
