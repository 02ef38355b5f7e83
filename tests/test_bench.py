"""The benchmark scripts start: each is run as its README says (``python bench/X.py``),
where Python puts ``bench/`` first on the path and ``bench/worker.py`` could shadow
the ``worker`` package (``bench/project.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if "argparse" in path.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_it_starts_each_benchmark(script: str) -> None:
    ran = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "usage:" in ran.stdout


def test_the_scheduler_benchmark_builds_its_data_on_this_schema() -> None:
    """At a tiny size: its set-based INSERTs must name every column the schema
    requires (a NOT NULL column added later would otherwise break it unnoticed)."""
    command = [sys.executable, str(BENCH / "scale.py"), "--stores", "5", "--customers", "40",
               "--due", "20"]  # fmt: skip
    ran = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "| reminders created | 20 |" in ran.stdout


def test_the_replayed_api_answers_what_the_sandbox_answers() -> None:
    """bench/worker.py's default stand-in must serve the sandbox's own answers (the
    published shapes), rendered or not, and count the points requests."""
    import socket
    import threading

    import httpx

    from bench import api_replay
    from worker.sandbox.salla import SallaSandboxState, create_salla_sandbox, sample_history

    state = SallaSandboxState(rate_limit=10**9, rate_window=600.0)
    state.add_merchant("1000000001", access_token="tok-a", refresh_token="r-a")
    state.set_entries("1000000001", "501", sample_history(count=70))
    app = create_salla_sandbox(state)
    answers = api_replay.render(app, [("tok-a", "501", "1", "60"), ("tok-a", "501", "2", "60")])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = threading.Event()
    replay = api_replay.Replay(app, answers, delay=0.0)
    threading.Thread(target=replay.serve, args=(port, ready.set), daemon=True).start()
    assert ready.wait(10)
    headers = {"Authorization": "Bearer tok-a", "User-Agent": "t", "Accept": "application/json"}
    sandbox = app.test_client()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        for page, customer in (("2", "501"), ("1", "999")):  # rendered; not rendered: a 404
            query = {"customer_id": customer, "page": page, "per_page": "60"}
            replayed = client.get(api_replay.POINTS_PATH, params=query)
            direct = sandbox.get(api_replay.POINTS_PATH, query_string=query, headers=headers)
            assert (replayed.status_code, replayed.content) == (direct.status_code, direct.data)
            assert replayed.headers["content-type"] == direct.headers["content-type"]
        assert replayed.status_code == 404
        assert client.get(api_replay.COUNT_PATH).json() == {"requests": 2}
