"""``loyalty-relay demo``: the whole path on one machine, narrated.

Starts every platform's sandbox and a capture sink in this process, runs the
service embedded (``loyalty-relay run`` in a child process, SQLite
everywhere), registers one sandbox store per platform with the sink, fires
correctly authenticated webhooks and prints what reached the sink.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from worker import runtime as runtime_module
from worker.config import load_settings
from worker.platforms import samples_module
from worker.platforms.base import SampleDelivery, StoreUpdate
from worker.points import CHANGE_KINDS
from worker.sandbox.capture import CapturedDelivery, CaptureLog, capture_log, create_capture_app
from worker.sandbox.demo_platforms import DEMO_PLATFORMS, DemoPlatform, Webhook
from worker.sandbox.server import serve_in_thread
from worker.signing import new_secret
from worker.storage.migrate import upgrade
from worker.storage.models import Sink
from worker.stores import save_store

Echo = Callable[[str], None]
WAIT_SECONDS = 60.0


def run_demo(*, port: int, keep: bool, echo: Echo) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="loyalty-relay-demo-"))
    platforms = [make() for make in DEMO_PLATFORMS]
    sink_secret = new_secret()
    capture_app = create_capture_app(sink_secret)
    with ExitStack() as stack:
        apis = {p.name: stack.enter_context(p.server("127.0.0.1", 0)).url for p in platforms}
        sink = stack.enter_context(serve_in_thread(capture_app))
        env = _environment(data_dir, platforms, apis)
        _register(env, platforms, apis, f"{sink.url}/loyalty", sink_secret, echo)
        port = port or _free_port()
        with _service(env, port, echo):
            base = f"http://127.0.0.1:{port}"
            log = capture_log(capture_app)
            for platform in platforms:
                _story(base, platform, log, echo)
            _epilogue(base, platforms[0], log, echo)
    if keep:
        echo(f"data kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


def _environment(
    data_dir: Path, platforms: list[DemoPlatform], apis: dict[str, str]
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    env |= {
        "RELAY_DATA_DIR": str(data_dir),
        "RELAY_SECRET_KEY": Fernet.generate_key().decode(),  # a throwaway data folder
        "RELAY_ALLOW_PRIVATE_URLS": "1",  # the sandboxes and the capture sink are local
        "RELAY_DEBOUNCE_SECONDS": "1",
        "RELAY_SETTLE_DELAYS": "",
        "RELAY_LOG_LEVEL": "WARNING",
    }
    for platform in platforms:
        env |= platform.env(apis[platform.name])
    return env


def _register(
    env: dict[str, str],
    platforms: list[DemoPlatform],
    apis: dict[str, str],
    sink_url: str,
    secret: str,
    echo: Echo,
) -> None:
    runtime = runtime_module.configure(load_settings(env))
    upgrade(runtime.engine)
    with runtime.transaction() as session:
        for platform in platforms:
            update = StoreUpdate(status="active", credentials=platform.credentials)
            store = save_store(
                runtime, session, platform.name, platform.store_id, update,
                api_base=apis[platform.name],
            )  # fmt: skip
            config = runtime.cipher.seal({"url": sink_url, "secret": secret})
            session.add(
                Sink(store_id=store.id, kind="webhook", config=config, kinds=list(CHANGE_KINDS))
            )
            echo(f"• {platform.name} sandbox at {apis[platform.name]}: store {store.key}")
    runtime_module.configure_none()
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


def _story(base: str, platform: DemoPlatform, log: CaptureLog, echo: Echo) -> None:
    echo(f"\n── {platform.name} ──")
    _fire(base, platform, platform.first, echo)
    _show(_wait_for(log, len(log.received()) + 1), echo)
    credit = platform.after_credit
    echo(f"The loyalty program credits 250 points; {credit.receiver} sends {credit.event}:")
    platform.credit(250)
    _fire(base, platform, credit, echo)
    _show(_wait_for(log, len(log.received()) + 1), echo)


def _epilogue(base: str, platform: DemoPlatform, log: CaptureLog, echo: Echo) -> None:
    echo(f"\n── retries and no-ops ({platform.name}) ──")
    login = Webhook(platform.first.receiver, "customer.login", platform.first.secret)
    delivery = _fire(base, platform, login, echo)
    echo("The platform retries the same delivery (same bytes):")
    _post(base, delivery, echo, "customer.login (retry)")
    time.sleep(4)
    echo(f"  sink deliveries so far: {len(log.received())} (nothing new: no change, no message)")
    echo(f"\nsink received {len(log.received())} signed deliveries, "
         f"{len(log.duplicates())} duplicates.")  # fmt: skip


def _fire(base: str, platform: DemoPlatform, webhook: Webhook, echo: Echo) -> SampleDelivery:
    samples = samples_module(webhook.receiver)
    delivery: SampleDelivery = samples.build(
        webhook.event, platform.store_id, platform.customer, webhook.secret
    )
    _post(base, delivery, echo, webhook.event)
    return delivery


def _post(base: str, delivery: SampleDelivery, echo: Echo, label: str) -> None:
    url = f"{base}{delivery.path}"
    response = httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=10)
    status = response.json().get("status", response.text[:80])
    echo(f"→ POST {delivery.path}  {label}: {response.status_code} {status}")


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
