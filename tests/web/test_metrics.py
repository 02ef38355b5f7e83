"""``/metrics``: counters summed over real gunicorn workers, its own port, the token,
and the gauges read from the database and the broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SALLA_SECRET
from tests.factories import MERCHANT, add_salla_store, encode, salla_event, salla_headers
from tests.web.conftest import Served, free_port
from web import create_app
from worker import dispatch
from worker.celery_app import create_celery
from worker.config import Settings
from worker.platforms.salla import samples
from worker.runtime import Runtime

TOKEN = "metrics-token-of-at-least-24-chars"


@pytest.fixture
def client(runtime: Runtime, settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def stored(platform: str = "salla") -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("relay_webhooks_received_total", (("outcome", "stored"), ("platform", platform)))


def send_webhooks(url: str, count: int, first: int = 7000) -> None:
    for number in range(first, first + count):
        body = samples.encode(samples.sample_event("customer.updated", MERCHANT, str(number)))
        headers = samples.signed_headers(body, SALLA_SECRET) | {"Connection": "close"}
        answer = httpx.post(f"{url}/webhooks/salla", content=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_it_sums_the_webhooks_of_every_gunicorn_worker(
    serve_gunicorn: Callable[..., Served], runtime: Runtime, tmp_path: Path
) -> None:
    add_salla_store(runtime)
    folder = tmp_path / "metrics"
    url, _ = serve_gunicorn(WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(folder))
    send_webhooks(url, 40)
    writers = {path.name for path in folder.glob("counter_*.db")}
    assert len(writers) == 2  # both workers took webhooks and counted their own
    for _ in range(4):  # whichever worker answers the scrape shows the sum
        scraped = samples_of(httpx.get(f"{url}/metrics", timeout=10).text)
        assert scraped[stored()] == 40


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_it_serves_metrics_on_their_own_port_with_the_token(
    serve_gunicorn: Callable[..., Served], runtime: Runtime
) -> None:
    add_salla_store(runtime)
    port = free_port()
    url, _ = serve_gunicorn(
        WEB_CONCURRENCY="2", RELAY_METRICS_PORT=str(port), RELAY_OPS_TOKEN=TOKEN
    )
    send_webhooks(url, 3)
    assert httpx.get(f"{url}/metrics").status_code == 404  # not on the webhooks' port
    own = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(own)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.get(own, headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = httpx.get(own, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert samples_of(answer.text)[stored()] == 3


def test_the_web_metrics_ask_for_the_ops_token(runtime: Runtime, settings: Settings) -> None:
    guarded = create_app(Settings(**{**settings.__dict__, "ops_token": TOKEN}))
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and "relay_rows" in answer.get_data(as_text=True)
    assert TOKEN not in answer.get_data(as_text=True)


def test_it_counts_each_outcome_of_a_webhook(client: FlaskClient, runtime: Runtime) -> None:
    add_salla_store(runtime)
    before = samples_of(client.get("/metrics").get_data(as_text=True))
    body = encode(salla_event())
    headers = salla_headers(body, SALLA_SECRET)
    for _ in range(2):  # stored, then a duplicate
        client.post("/webhooks/salla", data=body, headers=headers)
    client.post("/webhooks/salla", data=body, headers={"X-Salla-Signature": "0" * 64})
    after = samples_of(client.get("/metrics").get_data(as_text=True))
    for outcome in ("stored", "duplicate", "rejected_signature"):
        key = ("relay_webhooks_received_total", (("outcome", outcome), ("platform", "salla")))
        assert after[key] - before.get(key, 0.0) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_it_shows_each_queue_depth_and_the_age_of_its_next_message(
    client: FlaskClient, runtime: Runtime
) -> None:
    celery = create_celery(runtime.settings)
    for delivery_id in ("d1", "d2", "d3"):
        dispatch.enqueue(celery, dispatch.DELIVER, delivery_id)
    scraped = samples_of(client.get("/metrics").get_data(as_text=True))
    assert scraped[("relay_queue_depth", (("queue", "deliveries"),))] == 3
    assert scraped[("relay_queue_depth", (("queue", "refresh"),))] == 0
    assert scraped[("relay_queue_oldest_seconds", (("queue", "deliveries"),))] > 0
    assert scraped[("relay_queue_oldest_seconds", (("queue", "refresh"),))] == 0


def test_the_metrics_port_refuses_junk(settings: Settings) -> None:
    from worker.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RELAY_METRICS_PORT"):
        load_settings({"RELAY_DATA_DIR": str(settings.data_dir), "RELAY_METRICS_PORT": "70000"})
