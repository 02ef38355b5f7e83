"""What the web process loads: what receiving needs, and none of the clients it never uses.

A web worker's memory is mostly the libraries it imports (README, "Memory of
the web process"). The receiver makes no outbound call (no httpx or httpcore),
speaks RESP to Redis itself (no redis-py, kombu or Celery) and reads no
platform's API answers (no marshmallow). A fresh interpreter creates the app as
the tests do, serves one signed webhook and one scrape through Flask's test
client, and reports which of those packages it loaded: the test process itself
has them all loaded already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tests.conftest import SALLA_SECRET, relay_env
from tests.factories import MERCHANT, add_salla_store, encode, salla_event, salla_headers
from worker.config import Settings
from worker.runtime import Runtime
from worker.storage.models import InboxEvent

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_THE_RECEIVER = ("httpx", "httpcore", "redis", "kombu", "celery", "marshmallow")

PROBE = f"""
import json, sys
from web import create_app
case = json.load(sys.stdin)
client = create_app().test_client()
answer = client.post("/webhooks/salla", data=case["body"].encode(), headers=case["headers"])
scrape = client.get("/metrics")
exec(case["also"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {NOT_FOR_THE_RECEIVER!r})
answered = [answer.status_code, answer.get_json()["status"]]
print(json.dumps({{"answer": answered, "scrape": scrape.status_code, "loaded": loaded}}))
"""


def serve_in_a_fresh_process(
    settings: Settings, data_dir: Path, body: bytes, also: str = ""
) -> dict[str, object]:
    """Create the app, serve ``body`` signed and a scrape, run ``also``; what was loaded."""
    # The production policy for outbound URLs: settings are checked as a deployment has them.
    env = relay_env(data_dir, settings.database_url, settings.broker_url)
    env["RELAY_ALLOW_PRIVATE_URLS"] = "0"
    case = {"body": body.decode(), "headers": salla_headers(body, SALLA_SECRET), "also": also}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps(case),
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_the_receiver_loads_no_http_client_nor_broker_client(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    add_salla_store(runtime)
    body = encode(salla_event())
    report = serve_in_a_fresh_process(settings, tmp_path, body)
    assert report == {"answer": [200, "accepted"], "scrape": 200, "loaded": []}
    with runtime.sessions() as session:
        [row] = session.scalars(select(InboxEvent))
    assert row.store_ref == MERCHANT


def test_it_would_see_a_client_loaded(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    """The probe can fail: what a worker does first when it reads points (the
    platform's API client) loads httpx, and the probe reports it."""
    add_salla_store(runtime)
    body = encode(salla_event())
    also = "from worker.platforms import build_platforms\nbuild_platforms(settings)['zid'].api"
    also = "from worker.config import load_settings\nsettings = load_settings()\n" + also
    report = serve_in_a_fresh_process(settings, tmp_path, body, also)
    assert report["answer"] == [200, "accepted"]
    assert {"httpx", "httpcore", "marshmallow"} <= set(report["loaded"])  # type: ignore[call-overload]
