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


# Lines as PostgreSQL 15 on Debian writes them (log_line_prefix '%m [%p] %q%u@%d '),
# with log_min_duration_statement = 0: a statement's steps, each on its own line,
# the SQL's later lines indented.
PG_LOG = """\
2026-12-03 19:01:32.030 UTC [17540] postgres@postgres LOG:  duration: 56.082 ms  statement: \
CREATE DATABASE "relay_wbench_1"
2026-12-03 19:01:39.745 UTC [17602] postgres@relay_wbench_1 LOG:  duration: 0.443 ms  parse \
<unnamed>: WITH finished_attempt AS
\t(UPDATE delivery_attempts SET finished_at=$1::TIMESTAMP WITH TIME ZONE
2026-12-03 19:01:39.746 UTC [17602] postgres@relay_wbench_1 LOG:  duration: 0.738 ms  bind \
<unnamed>: WITH finished_attempt AS
2026-12-03 19:01:39.747 UTC [17602] postgres@relay_wbench_1 LOG:  duration: 1.250 ms  execute \
<unnamed>: WITH finished_attempt AS
2026-12-03 19:01:39.748 UTC [17602] postgres@relay_wbench_1 LOG:  duration: 2.000 ms  statement: \
COMMIT
2026-12-03 19:01:39.749 UTC [17611] postgres@relay_wbench_2 LOG:  duration: 9.000 ms  statement: \
COMMIT
2026-12-03 19:01:39.750 UTC [2253] LOG:  checkpoint starting: time
"""


def test_the_postgres_log_is_summed_by_statement_for_one_database(tmp_path: Path) -> None:
    from bench import pg_log

    log = tmp_path / "postgresql.log"
    log.write_text(PG_LOG)
    spent = pg_log.read(log, "relay_wbench_1")
    assert dict(spent.ms) == pytest.approx({"WITH finished_attempt AS": 2.431, "COMMIT": 2.0})
    assert spent.lines["WITH finished_attempt AS"] == 3
    assert pg_log.summary(spent, refreshes=2).startswith("PostgreSQL ms per refresh 2.22: 1.22")
    start = PG_LOG.index("2026-12-03 19:01:39.748")  # what a run wrote after this point
    assert dict(pg_log.read(log, "relay_wbench_1", start).ms) == {"COMMIT": 2.0}
