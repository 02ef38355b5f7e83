"""A real Celery worker (with beat) logs through the scrubbing handler, once per record.

Two poisoned tasks carry an email, a phone number and a token: one as its
argument (it fails inside SQL on PostgreSQL, whose error used to list the bound
parameters), one as a keyword (Python's ``TypeError`` repeats it in the message,
which only the scrubber can catch). None of the three may appear in the
worker's output, and no line may appear twice.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import quiet_broker, relay_env
from worker import dispatch
from worker.celery_app import create_celery
from worker.config import load_settings
from worker.storage.db import make_engine
from worker.storage.migrate import upgrade

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
EMAIL, PHONE, TOKEN = "sara.leak@example.com", "+966512345678", "tok_live_9f8e7d6c5b4a"
PLANTED = f"{EMAIL} {PHONE} access_token={TOKEN}"
# A queue of its own: test sessions may share a Redis database, never this queue.
QUEUE = f"logs-test-{os.getpid()}-{secrets.token_hex(3)}"


def run_worker_until_failure(env: dict[str, str], out: Path) -> str:
    """Start a worker, send it the poisoned task, return its output once the task failed."""
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--beat",
        "--queues", QUEUE, "--concurrency", "1", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with out.open("wb") as sink:
        worker = subprocess.Popen(
            command, env=os.environ | env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # Messages sent before the worker declared its queue would have nowhere to go.
        wait_for(out, "ready.", 1)
        publisher = create_celery(load_settings(env))
        publisher.send_task(dispatch.REFRESH_POINTS, args=(PLANTED,), queue=QUEUE)
        publisher.send_task(dispatch.REFRESH_POINTS, kwargs={PLANTED: 1}, queue=QUEUE)
        wait_for(out, "raised unexpected", 2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    return out.read_text()


def wait_for(out: Path, text: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while out.read_text().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.3)


@pytest.fixture
def worker_env(tmp_path: Path, postgres_url: str, redis_url: str) -> dict[str, str]:
    quiet_broker(redis_url)
    env = relay_env(tmp_path, postgres_url, redis_url)
    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    return env


def test_it_scrubs_a_real_workers_output_and_prints_each_line_once(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    output = run_worker_until_failure(worker_env, tmp_path / "worker.log")
    assert output.count("raised unexpected") == 2, output[-2000:]
    for leak in (EMAIL, PHONE, "512345678", TOKEN):
        assert leak not in output
    assert "unexpected keyword argument '[email] [phone] access_token=[secret]'" in output
    assert "SQL parameters hidden" in output
    log_lines = [line for line in output.splitlines() if line[:2] == "20"]  # timestamped
    repeated = [line for line, count in Counter(log_lines).items() if count > 1]
    assert not repeated
    assert " WARNING " not in "".join(line for line in log_lines if "celery.redirected" in line)
    assert sum("raised unexpected" in line for line in log_lines) == 2


def test_it_writes_one_json_object_per_line_when_asked(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env | {"RELAY_LOG_FORMAT": "json"}
    output = run_worker_until_failure(env, tmp_path / "worker.log")
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    failures = [record for record in records if "raised unexpected" in record["message"]]
    assert len(failures) == 2
    assert "exception" in failures[0] and EMAIL not in output
    assert {record["process"] for record in records} >= {"MainProcess"}
