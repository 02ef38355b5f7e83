"""Cost per refresh: the relay's worker beside a naive Celery worker, in one run.

    .venv/bin/python bench/worker.py [--stores 200] [--customers 10] [--pool prefork]
                                     [--concurrency N] [--api-delay 0.05] [--json]

Production shape, both sides in turn on the same stand-ins and settings:
- a Salla API stand-in in its own process answering after ``--api-delay`` seconds,
  70 history entries per customer (2 pages of 60): the sandbox's (worker/sandbox/salla.py)
  answers replayed byte for byte (bench/api_replay.py), or with ``--api sandbox`` the
  sandbox itself, which costs the shared cores about 3 ms of CPU per page;
- a webhook sink per store (one HTTP server in this process, a path per store);
- relay: a fresh PostgreSQL database, Redis db 15 (RELAY_BENCH_REDIS_URL), the
  receiver under gunicorn and the worker line(s) ``loyalty-relay run`` starts
  (worker/cli/serve.py), quota lifted, debounce 0, settle re-checks off;
- naive: bench/naive_worker.py under gunicorn and Celery with the same pool and
  concurrency (its own queue on the same Redis db).
One signed Salla ``order.created`` per customer (worker/platforms/salla/examples.py)
is POSTed as fast as the receiver takes them; a refresh counts when the sink
has its delivery. Worker CPU is utime+stime from /proc/<pid>/stat of the worker
processes and their children; PostgreSQL's is that of the database's backends.
SQL statements are counted by SQLAlchemy events in the worker (bench/relay_counted.py).
``--pg-log FILE`` also times them on the server, from its log (bench/pg_log.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import redis
from cryptography.fernet import Fernet

# This file's name is the package's: run as a script, bench/ must come after the
# project on the path, or ``import worker`` would import this file.
ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH), str(BENCH)]

import api_replay  # noqa: E402
import pg_log  # noqa: E402
from ingest import free_port, progress, stop, wait_until_up  # noqa: E402
from scratch import fresh_database  # noqa: E402

from worker import runtime  # noqa: E402
from worker.cli.serve import worker_commands  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.platforms.base import StoreUpdate  # noqa: E402
from worker.platforms.salla import samples  # noqa: E402
from worker.points import CHANGE_KINDS  # noqa: E402
from worker.storage.migrate import upgrade  # noqa: E402
from worker.storage.models import Sink  # noqa: E402
from worker.stores import save_store  # noqa: E402

REDIS_URL = os.environ.get("RELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "bench-worker-webhook-secret"
SINK_SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
EVENT = "order.created"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SENDERS = 8  # connections POSTing the webhooks


@dataclass(frozen=True)
class Options:
    stores: int
    customers: int
    pool: str
    concurrency: int | None
    api_delay: float
    api: str
    timeout: float
    sides: str
    profile: Path | None
    json: bool
    timeline: Path | None = None
    pg_log: Path | None = None


def parse_args(argv: list[str] | None) -> Options:
    shown = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=shown)
    add = parser.add_argument
    add("--stores", type=int, default=200, help="Salla stores (200)")
    add("--customers", type=int, default=10, help="customers per store, one webhook each (10)")
    add("--pool", default=None, help="Celery pool for both sides (default: as shipped)")
    add("--concurrency", type=int, help="Celery concurrency for both sides (default: as shipped)")
    add("--api-delay", type=float, default=0.05, help="seconds the API takes per answer (0.05)")
    add("--api", choices=("replay", "sandbox"), default="replay",
        help="the API stand-in: the sandbox's answers replayed (bench/api_replay.py), "
             "or the sandbox itself (replay)")  # fmt: skip
    add("--timeout", type=float, default=900.0, help="seconds to wait for a side (900)")
    add("--sides", default="relay,naive", help="which sides, in order (relay,naive)")
    add("--profile", type=Path, help="py-spy the workers into this folder (pip install py-spy)")
    add("--json", action="store_true", help="print the results as JSON")
    add("--timeline", type=Path,
        help="write each side's half-seconds (arrivals, busy, queued messages) here")  # fmt: skip
    add("--pg-log", type=Path,
        help="PostgreSQL's log: time the relay's statements (bench/pg_log.py)")  # fmt: skip
    return Options(**vars(parser.parse_args(argv)))


# The stand-ins --------------------------------------------------------------------------


def merchants(options: Options) -> list[str]:
    return [str(1_000_000_000 + index) for index in range(options.stores)]


def customer_ids(merchant: str, options: Options) -> list[str]:
    base = (int(merchant) - 1_000_000_000) * 1000 + 5_000_000
    return [str(base + index) for index in range(options.customers)]


def serve_api(port: int, options: Options, ready: Any) -> None:
    """The Salla stand-in, in a process of its own: its CPU is nobody's worker CPU."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler cleans up, not this
    from werkzeug.serving import make_server

    from worker.platforms.salla.client import PER_PAGE
    from worker.sandbox.salla import SallaSandboxState, create_salla_sandbox, sample_history
    from worker.sandbox.server import QuietRequestHandler

    state = SallaSandboxState(rate_limit=10**9, rate_window=600.0)
    history = sample_history(count=70)
    for merchant in merchants(options):
        state.add_merchant(merchant, access_token=f"tok-{merchant}", refresh_token=f"r-{merchant}")
        for customer in customer_ids(merchant, options):
            state.set_entries(merchant, customer, history)
    app = create_salla_sandbox(state)
    if options.api == "replay":
        pages = -(-len(history) // PER_PAGE)
        asked = [(f"tok-{merchant}", customer, str(page), str(PER_PAGE))
                 for merchant in merchants(options) for customer in customer_ids(merchant, options)
                 for page in range(1, pages + 1)]  # fmt: skip
        api_replay.Replay(app, api_replay.render(app, asked), options.api_delay).serve(
            port, ready.set
        )
        return
    state.set_delay(options.api_delay)
    points = "/customers/loyalty/points"
    app.add_url_rule("/_bench/requests", "count", lambda: {"requests": state.request_count(points)})
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietRequestHandler)
    ready.set()
    server.serve_forever()


class SinkServer:
    """Every store's webhook sink: ``POST /<side>/<merchant>``; first arrival per customer."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str, str], float] = {}
        self.posts = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.record(self.path, json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, path: str, document: dict[str, Any]) -> None:
        _, side, merchant = path.split("/", 2)
        data = document.get("data", document)
        key = (side, merchant, str(data["customer_id"]))
        with self.lock:
            self.posts += 1
            self.arrived.setdefault(key, time.time())

    def count(self, side: str) -> int:
        with self.lock:
            return sum(1 for key in self.arrived if key[0] == side)


# Processes and what they cost -----------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant alive now."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the processes, plus what their reaped children used."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[index]) for index in (11, 12, 13, 14))
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=output, start_new_session=True
        )


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(command, env, log, cwd)
    try:
        yield process
    finally:
        stop(process)


def gunicorn_command(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
            "--bind", f"127.0.0.1:{port}", app]  # fmt: skip


def celery_flags(options: Options) -> list[str]:
    flags = ["--pool", options.pool] if options.pool else []
    return flags + (["--concurrency", str(options.concurrency)] if options.concurrency else [])


# One side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    side: str
    refreshes: int
    expected: int
    seconds: float
    p50_s: float
    p99_s: float
    worker_cpu_ms: float
    web_cpu_ms: float
    postgres_cpu_ms: float | None
    api_calls: int
    worker_rss_mb: float
    statements: float | None
    transactions: float | None
    checkouts: float | None
    commands: list[str]
    machine: dict[str, float] | None = None  # CPU ms per refresh by who spent it (``Machine``)
    busy: float = 0.0  # share of the machine's cores busy while the side ran
    redis_commands: dict[str, float] | None = None  # per refresh, by command (``redis_calls``)
    tasks: dict[str, int] | None = None  # task runs (and ids handed to them) by name
    pg_time: str | None = None  # PostgreSQL's time per refresh by statement (``--pg-log``)

    @property
    def rate(self) -> float:
        return self.refreshes / self.seconds if self.seconds else 0.0


def webhooks(options: Options) -> list[tuple[str, str, bytes, str]]:
    out = []
    for merchant in merchants(options):
        for customer in customer_ids(merchant, options):
            body = samples.encode(samples.sample_event(EVENT, merchant, customer))
            signature = samples.signed_headers(body, SECRET)["X-Salla-Signature"]
            out.append((merchant, customer, body, signature))
    return out


def send_all(port: int, hooks: list[tuple[str, str, bytes, str]]) -> dict[tuple[str, str], float]:
    sent: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def lane(start: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for merchant, customer, body, signature in hooks[start::SENDERS]:
            headers = {"Content-Type": "application/json", "X-Salla-Signature": signature,
                       "X-Salla-Security-Strategy": "Signature"}  # fmt: skip
            with lock:
                sent[merchant, customer] = time.time()
            connection.request("POST", "/webhooks/salla", body, headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"receiver answered {answer.status}")
        connection.close()

    threads = [threading.Thread(target=lane, args=(index,)) for index in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def api_calls(api: str) -> int:
    host, port = api.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"User-Agent": "bench", "Accept": "application/json"}  # the stand-in's WAF
    connection.request("GET", "/_bench/requests", headers=headers)
    count: int = json.loads(connection.getresponse().read())["requests"]
    connection.close()
    return count


@dataclass
class Side:
    name: str
    web_pid: int
    worker_pids: list[int]
    port: int
    dsn: str | None = None
    counts: Path | None = None
    machine: Machine | None = None


def measure(side: Side, options: Options, sink: SinkServer, api: str) -> Outcome:
    hooks = webhooks(options)
    time.sleep(3)  # let the workers finish starting
    calls_before = api_calls(api)
    workers = [pid for root in side.worker_pids for pid in tree(root)]
    webs = tree(side.web_pid)
    before = cpu_seconds(workers), cpu_seconds(webs), postgres_cpu(side.dsn)
    counts_before = sql_counts(side.counts)
    redis_before = redis_calls()
    machine_before = side.machine.read() if side.machine else None
    logged = pg_log.offset(options.pg_log) if options.pg_log and side.dsn else None
    progress(f"{side.name}: sending {len(hooks)} webhooks")
    with profiling(side, options), timeline(side, options, sink):
        sent = send_all(side.port, hooks)
        deadline = time.monotonic() + options.timeout
        while sink.count(side.name) < len(hooks) and time.monotonic() < deadline:
            time.sleep(0.2)
    workers = [pid for root in side.worker_pids for pid in tree(root)]
    after = cpu_seconds(workers), cpu_seconds(webs), postgres_cpu(side.dsn)
    machine_after = side.machine.read() if side.machine else None
    rss = rss_mb(workers)
    time.sleep(0.6)  # the counters' last write
    counts = _minus(sql_counts(side.counts), counts_before)
    outcome = summarize(side, options, sink, sent, before, after, rss, counts,
                        api_calls(api) - calls_before)  # fmt: skip
    per = max(outcome.refreshes, 1)
    spent = {name: (n - redis_before.get(name, 0)) / per for name, n in redis_calls().items()}
    outcome = replace(outcome, redis_commands={k: v for k, v in spent.items() if v >= 0.05})
    if logged is not None and options.pg_log and side.dsn:
        found = pg_log.read(options.pg_log, side.dsn.rsplit("/", 1)[1], logged)
        outcome = replace(outcome, pg_time=pg_log.summary(found, per))
    if machine_before is None or machine_after is None:
        return outcome
    known = {"worker": outcome.worker_cpu_ms, "postgres": outcome.postgres_cpu_ms or 0.0,
             "web": outcome.web_cpu_ms}  # fmt: skip
    shares, busy = machine_share(machine_before, machine_after, max(outcome.refreshes, 1), known)
    return Outcome(**{**asdict(outcome), "machine": shares, "busy": busy})


class Machine:
    """Where the whole machine's CPU went while a side ran, not only its workers': the
    stand-ins (API process, this process's sink and senders), Redis and the rest share
    the same cores, and on a small machine they are what bounds a CPU-bound side."""

    def __init__(self, api_pid: int) -> None:
        self.api_pid = api_pid
        try:
            self.redis_pid: int | None = int(redis.Redis.from_url(REDIS_URL).info()["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            self.redis_pid = None

    def read(self) -> dict[str, float]:
        mine = os.times()
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle, steal = fields[3] + fields[4], fields[7]  # idle + iowait; taken by the host
        return {
            "api": cpu_seconds(tree(self.api_pid)),
            "sink+senders": mine.user + mine.system,
            "redis": cpu_seconds([self.redis_pid]) if self.redis_pid else 0.0,
            "busy": (sum(fields[:7]) - idle) / TICKS,
            "steal": steal / TICKS,
            "all": sum(fields[:8]) / TICKS,
        }


def machine_share(
    before: dict[str, float], after: dict[str, float], per: int, known: dict[str, float]
) -> tuple[dict[str, float], float]:
    """CPU ms per refresh by spender (``known``: the side's own, already per refresh),
    and the busy share of the cores; "other" is the rest of the machine's busy time."""
    spent = {name: (after[name] - before[name]) / per * 1000 for name in after}
    shares = known | {name: spent[name] for name in ("api", "sink+senders", "redis")}
    shares["other"] = max(spent["busy"] - sum(shares.values()), 0.0)
    shares["total"] = spent["busy"]
    shares["steal"] = spent["steal"]  # not in the total: the host ran someone else
    return shares, spent["busy"] / max(spent["all"], 1e-9)


def summarize(
    side: Side,
    options: Options,
    sink: SinkServer,
    sent: dict[tuple[str, str], float],
    before: tuple[float, float, float | None],
    after: tuple[float, float, float | None],
    rss: float,
    counts: dict[str, int] | None,
    calls: int,
) -> Outcome:
    with sink.lock:
        arrived = {k[1:]: t for k, t in sink.arrived.items() if k[0] == side.name}
    latencies = sorted(arrived[key] - sent[key] for key in arrived if key in sent)
    done = len(latencies)
    seconds = (max(arrived.values()) - min(sent.values())) if arrived else 0.0
    per = max(done, 1)
    pg = None if before[2] is None or after[2] is None else (after[2] - before[2]) / per * 1000
    return Outcome(
        side=side.name,
        refreshes=done,
        expected=options.stores * options.customers,
        seconds=seconds,
        p50_s=_pct(latencies, 0.50),
        p99_s=_pct(latencies, 0.99),
        worker_cpu_ms=(after[0] - before[0]) / per * 1000,
        web_cpu_ms=(after[1] - before[1]) / per * 1000,
        postgres_cpu_ms=pg,
        api_calls=calls,
        worker_rss_mb=rss,
        statements=counts["statements"] / per if counts else None,
        transactions=counts["transactions"] / per if counts else None,
        checkouts=counts["checkouts"] / per if counts else None,
        commands=[],
        tasks={k: v for k, v in counts.items() if k.startswith(("task:", "items:"))}
        if counts
        else None,
    )


def _counted_lines(outcome: Outcome) -> list[str]:
    """The side's task runs, and PostgreSQL's time by statement when it was logged."""
    lines = [f"  {outcome.side}: tasks run {_tasks_line(outcome.tasks)}"] if outcome.tasks else []
    return lines + ([f"  {outcome.side}: {outcome.pg_time}"] if outcome.pg_time else [])


def _tasks_line(tasks: dict[str, int]) -> str:
    """``relay.refresh_many 602 (3.3 ids each), relay.dispatch 31``, busiest first."""
    runs = sorted(((k[5:], n) for k, n in tasks.items() if k.startswith("task:")),
                  key=lambda kv: -kv[1])  # fmt: skip
    parts = []
    for name, n in runs:
        ids = tasks.get(f"items:{name}")
        parts.append(f"{name} {n}" + (f" ({ids / n:.1f} ids each)" if ids else ""))
    return ", ".join(parts)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[max(0, int(p * len(values) + 0.999999) - 1)]


def _minus(now: dict[str, int] | None, then: dict[str, int] | None) -> dict[str, int] | None:
    if now is None or then is None:
        return None
    return {name: now[name] - then.get(name, 0) for name in now}


def redis_calls() -> dict[str, int]:
    """Commands the Redis server has run, by name (``INFO commandstats``): the whole
    server's, this run's broker, budgets and bells being all that use it."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def sql_counts(directory: Path | None) -> dict[str, int] | None:
    if directory is None:
        return None
    total = {"statements": 0, "transactions": 0, "checkouts": 0}
    for path in directory.glob("*.json"):
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for name, count in found.items():  # and each task's runs (``relay_counted``)
            total[name] = total.get(name, 0) + int(count)
    return total


def log_durations(dsn: str) -> None:
    """Every statement of the database at ``dsn`` logged with its duration, from its
    next session on (``bench/pg_log.py`` reads them back)."""
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as connection:
        statement = "ALTER DATABASE {} SET log_min_duration_statement = 0"
        connection.execute(psycopg.sql.SQL(statement).format(psycopg.sql.Identifier(name)))


def postgres_cpu(dsn: str | None) -> float | None:
    """CPU seconds of this database's backends (scoped to it, as every query here is)."""
    if dsn is None:
        return None
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    return cpu_seconds([row[0] for row in rows])


# Profiles ------------------------------------------------------------------------------

# (label, top-level packages): a sample counts for the package of its innermost frame's
# file (py-spy names files relative to their site-packages or the project), so the
# process's own frames, whose text names the celery command line, count for nobody.
CATEGORIES = (
    ("psycopg", ("psycopg", "psycopg_binary")),
    ("sqlalchemy", ("sqlalchemy",)),
    ("redis", ("redis",)),
    ("celery/kombu/billiard", ("celery", "kombu", "billiard", "amqp", "vine")),
    ("httpx/httpcore/h11", ("httpx", "httpcore", "h11", "anyio")),
    ("marshmallow", ("marshmallow",)),
    ("cryptography", ("cryptography",)),
    ("json", ("json",)),
    ("relay's own code", ("worker", "web")),
)
FUNCTIONS = (
    ("quota (inclusive)", "worker/quota.py"),
    ("inbox drain (inclusive)", "worker/pipeline/inbox.py"),
    ("snapshots + outbox rows (inclusive)", ("snapshots.py", "create_deliveries")),
    ("outbox delivery (inclusive)", ("send_own", "outbox.py (deliver")),
    ("salla client (inclusive)", "worker/platforms/salla"),
)


@contextmanager
def timeline(side: Side, options: Options, sink: SinkServer) -> Iterator[None]:
    """Every half second while the side runs: refreshes delivered, the share of the
    machine's cores busy, the cores its workers and its web used, and the messages
    waiting in the broker's queues. Shows where a side waits: cores idle while its
    queues are empty is work not handed out yet; idle while they are full, its
    workers all waiting at once."""
    if options.timeline is None:
        yield
        return
    broker, done = redis.Redis.from_url(REDIS_URL), threading.Event()
    path = options.timeline / f"{side.name}.tsv"
    options.timeline.mkdir(parents=True, exist_ok=True)

    def spent() -> tuple[float, float, float]:
        workers = [pid for root in side.worker_pids for pid in tree(root)]
        return time.monotonic(), cpu_seconds(workers), cpu_seconds(tree(side.web_pid))

    def sample() -> None:
        start, last, cpu = time.monotonic(), _cores(), spent()
        with path.open("w") as out:
            out.write("seconds\tdelivered\tbusy\tworker\tweb\tqueued\n")
            while not done.wait(0.5):
                now, used = _cores(), spent()
                busy = 1 - (now[0] - last[0]) / max(now[1] - last[1], 1)
                worker, web = ((used[i] - cpu[i]) / (used[0] - cpu[0]) for i in (1, 2))
                queued = sum(int(broker.llen(name)) for name in QUEUES[side.name])
                out.write(f"{used[0] - start:.1f}\t{sink.count(side.name)}\t{busy:.2f}\t"
                          f"{worker:.2f}\t{web:.2f}\t{queued}\n")  # fmt: skip
                last, cpu = now, used

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()


QUEUES = {"relay": ("events", "refresh", "deliveries"), "naive": ("naive",)}


def _cores() -> tuple[int, int]:
    """(idle, all) clock ticks of the machine's cores so far."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return fields[3] + fields[4], sum(fields)


@contextmanager
def profiling(side: Side, options: Options) -> Iterator[None]:
    if options.profile is None:
        yield
        return
    options.profile.mkdir(parents=True, exist_ok=True)
    raw = options.profile / f"{side.name}.txt"
    spy, log = str(Path(sys.executable).parent / "py-spy"), (options.profile / "py-spy.log")
    spies = [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--format", "raw",
             "--rate", "200", "-o", f"{raw}.{pid}"],
            stdout=subprocess.DEVNULL, stderr=log.open("ab"),
        )
        for pid in side.worker_pids
    ]  # fmt: skip
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(2)
            process.wait(timeout=60)
        (options.profile / f"{side.name}-summary.txt").write_text(
            summarize_profile([Path(f"{raw}.{pid}") for pid in side.worker_pids])
        )


def summarize_profile(files: list[Path]) -> str:
    """Shares of the samples of threads holding the GIL (``--gil``): Python on CPU."""
    busy, by_kind = 0, {kind: 0 for kind, _ in CATEGORIES} | {"standard library, other": 0}
    by_function: dict[str, int] = {}
    for path in files:
        for line in path.read_text().splitlines() if path.exists() else []:
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            busy += int(count)
            frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
            package = _package(frames[-1]) if frames else ""
            kind = next((k for k, packages in CATEGORIES if package in packages), None)
            by_kind[kind or "standard library, other"] += int(count)
            for label, match in FUNCTIONS:
                if any(_has(frame, match) for frame in frames):
                    by_function[label] = by_function.get(label, 0) + int(count)
    lines = [f"{busy} samples on CPU (200/s per process); by the innermost library named:"]
    lines += [f"  {k:<36}{100 * n / max(busy, 1):5.1f} %" for k, n in by_kind.items()]
    lines += [f"  {k:<36}{100 * n / max(busy, 1):5.1f} %" for k, n in by_function.items()]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """``json`` of ``loads (json/__init__.py:346)``; ``socket.py`` of a module at the top."""
    where = frame.rpartition(" (")[2]
    return where.split("/", 1)[0] if "/" in where else where.partition(":")[0]


def _has(frame: str, match: str | tuple[str, ...]) -> bool:
    return any(m in frame for m in ((match,) if isinstance(match, str) else match))


# The two sides --------------------------------------------------------------------------


def relay_env(directory: Path, dsn: str, api: str, sink: SinkServer) -> dict[str, str]:
    (directory / "data").mkdir(exist_ok=True)  # beat keeps its schedule there
    return os.environ | {
        "RELAY_ENV": "production",
        "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        "REDIS_URL": REDIS_URL,
        "RELAY_SECRET_KEY": Fernet.generate_key().decode(),
        "SALLA_WEBHOOK_SECRET": SECRET,
        "RELAY_DATA_DIR": str(directory / "data"),
        "RELAY_LOG_LEVEL": "WARNING",
        "RELAY_ALLOW_PRIVATE_URLS": "1",
        "RELAY_SALLA_QUOTA": "100000000/600",
        "RELAY_DEBOUNCE_SECONDS": "0",
        "RELAY_SETTLE_DELAYS": "",
        "RELAY_BENCH_COUNTS": str(directory / "counts"),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
    }


def register(env: dict[str, str], options: Options, api: str, sink: SinkServer) -> None:
    relay = runtime.configure(load_settings(env))
    try:
        upgrade(relay.engine)
        with relay.transaction() as session:
            for merchant in merchants(options):
                credentials = {"access_token": f"tok-{merchant}", "refresh_token": f"r-{merchant}"}
                update = StoreUpdate(status="active", credentials=credentials)
                store = save_store(relay, session, "salla", merchant, update, api_base=api)
                config = relay.cipher.seal({"url": f"{sink.url}/relay/{merchant}",
                                            "secret": SINK_SECRET})  # fmt: skip
                session.add(
                    Sink(store_id=store.id, kind="webhook", config=config, kinds=list(CHANGE_KINDS))
                )
    finally:
        runtime.configure_none()


def relay_workers(options: Options) -> list[list[str]]:
    """The worker lines ``loyalty-relay run`` starts, counted, with the bench's pool flags.

    Beat stays in: its one-second tick is the dispatcher's (``relay.dispatch``), which
    hands each store its next jobs as earlier ones finish."""
    lines = []
    for command in worker_commands(None, "WARNING"):
        command[command.index("worker.celery_app")] = "relay_counted"
        lines.append(command + celery_flags(options))
    return lines


def run_relay(options: Options, api: str, sink: SinkServer, directory: Path) -> Outcome:
    with ExitStack() as stack:
        dsn = stack.enter_context(fresh_database(f"relay_wbench_{os.getpid()}"))
        env = relay_env(directory, dsn, api, sink)
        (directory / "counts").mkdir(exist_ok=True)
        progress(f"relay: migrating, registering {options.stores} stores with a sink each")
        register(env, options, api, sink)
        if options.pg_log:  # this database only; its sessions, all started below, log
            log_durations(dsn)
        port, log = free_port(), directory / "relay.log"
        web = stack.enter_context(running(gunicorn_command("web:create_app()", port), env, log))
        lines = relay_workers(options)
        pids = [stack.enter_context(running(line, env, log)).pid for line in lines]
        wait_until_up(web, port, log)
        side = Side("relay", web.pid, pids, port, dsn, directory / "counts", MACHINE)
        outcome = measure(side, options, sink, api)
        return Outcome(**{**asdict(outcome), "commands": [" ".join(c[2:]) for c in lines]})


def run_naive(options: Options, api: str, sink: SinkServer, directory: Path) -> Outcome:
    env = os.environ | {
        "NAIVE_BROKER_URL": REDIS_URL,
        "NAIVE_API_URL": api,
        "NAIVE_SINK_URL": sink.url,
        "NAIVE_SECRET": SECRET,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
    }
    flags = celery_flags(options) or ["--concurrency", str(shipped_concurrency(options))]
    worker = [sys.executable, "-m", "celery", "-A", "naive_worker", "worker", "-Q", "naive",
              "--loglevel", "WARNING", *flags]  # fmt: skip
    port, log = free_port(), directory / "naive.log"
    with ExitStack() as stack:
        web = stack.enter_context(
            running(gunicorn_command("naive_worker:receiver", port), env, log)
        )
        pid = stack.enter_context(running(worker, env, log)).pid
        wait_until_up(web, port, log)
        outcome = measure(Side("naive", web.pid, [pid], port, machine=MACHINE), options, sink, api)
        return Outcome(**{**asdict(outcome), "commands": [" ".join(worker[2:])]})


def shipped_concurrency(options: Options) -> int:
    """Processes the relay's worker lines run in all, so the naive worker gets as many."""
    total = 0
    for line in relay_workers(options):
        given = line[line.index("--concurrency") + 1] if "--concurrency" in line else None
        total += int(given) if given else shipped_default()
    return total


def shipped_default() -> int:
    """What a relay worker line runs without ``--concurrency`` (2 before it was a setting)."""
    try:
        from worker.config import default_worker_concurrency
    except ImportError:
        return 2
    return default_worker_concurrency()


LOCK_KEY = "relay:bench-worker-session"
MACHINE: Machine | None = None  # set in main(), once the API stand-in runs


@contextmanager
def bench_redis() -> Iterator[None]:
    """The Redis db, held for this run: two runs sharing one would take each other's tasks."""
    client = redis.Redis.from_url(REDIS_URL)
    if not client.set(LOCK_KEY, os.getpid(), nx=True, ex=3600):
        raise SystemExit(f"{REDIS_URL} is held by another bench/worker.py run (key {LOCK_KEY})")
    client.flushdb()
    client.set(LOCK_KEY, os.getpid(), ex=3600)
    try:
        yield
    finally:
        client.flushdb()
        client.close()


def render(outcomes: list[Outcome], options: Options) -> str:
    head = (f"{'side':<7}{'done':>11}{'ref/s':>8}{'p50 s':>8}{'p99 s':>8}{'wCPU ms':>9}"
            f"{'pgCPU':>7}{'webCPU':>8}{'SQL':>6}{'txn':>6}{'API':>7}{'RSS MB':>8}")  # fmt: skip
    lines = [
        f"{options.stores} stores x {options.customers} customers, API {options.api_delay:.3f} s, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        head,
    ]
    for o in outcomes:
        pg = f"{o.postgres_cpu_ms:.1f}" if o.postgres_cpu_ms is not None else "-"
        sql = f"{o.statements:.1f}" if o.statements is not None else "-"
        txn = f"{o.transactions:.1f}" if o.transactions is not None else "-"
        lines.append(
            f"{o.side:<7}{o.refreshes:>5}/{o.expected:<5}{o.rate:>8.1f}{o.p50_s:>8.1f}"
            f"{o.p99_s:>8.1f}{o.worker_cpu_ms:>9.1f}{pg:>7}{o.web_cpu_ms:>8.1f}{sql:>6}"
            f"{txn:>6}{o.api_calls:>7}{o.worker_rss_mb:>8.0f}"
        )
    for o in outcomes:
        lines.append(f"  {o.side}: {' | '.join(o.commands)}")
    for o in outcomes:
        if o.redis_commands:
            top = sorted(o.redis_commands.items(), key=lambda kv: -kv[1])
            listed = ", ".join(f"{name} {n:.2f}" for name, n in top[:8])
            lines.append(f"  {o.side}: Redis commands per refresh "
                         f"{sum(o.redis_commands.values()):.1f} ({listed})")  # fmt: skip
    for o in outcomes:
        lines += _counted_lines(o)
    for o in outcomes:
        if o.machine:
            mine = {k: v for k, v in o.machine.items() if k not in ("total", "steal")}
            parts = " + ".join(f"{k} {v:.1f}" for k, v in mine.items())
            parts += f"; stolen by the host {o.machine.get('steal', 0.0):.1f}"
            lines.append(f"  {o.side}: cores {100 * o.busy:.0f} % busy; CPU ms per refresh, "
                         f"all processes {o.machine['total']:.1f} = {parts}")  # fmt: skip
    by = {o.side: o for o in outcomes}
    if "relay" in by and "naive" in by and by["naive"].rate:
        relay, naive = by["relay"], by["naive"]
        lines.append(
            f"relay/naive: throughput {relay.rate / naive.rate:.2f}x (target >= 1.5), "
            f"worker CPU per refresh {relay.worker_cpu_ms / max(naive.worker_cpu_ms, 1e-9):.1f}x"
            f" (relay target <= 15 ms: {relay.worker_cpu_ms:.1f} ms)"
        )
    return "\n".join(lines)


def interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    sink = SinkServer()
    api_port = free_port()
    ready = multiprocessing.get_context("fork").Event()
    api_process = multiprocessing.get_context("fork").Process(
        target=serve_api, args=(api_port, options, ready), daemon=True
    )
    api_process.start()
    ready.wait(60)
    global MACHINE
    MACHINE = Machine(api_process.pid) if api_process.pid else None
    api = f"http://127.0.0.1:{api_port}"
    outcomes = []
    try:
        with tempfile.TemporaryDirectory(prefix="relay-wbench-") as tmp, bench_redis():
            for name in options.sides.split(","):
                run = run_relay if name == "relay" else run_naive
                outcomes.append(run(options, api, sink, Path(tmp)))
                progress(render(outcomes[-1:], options).splitlines()[2])
    finally:
        api_process.terminate()
    if options.json:
        print(json.dumps([asdict(o) | {"rate": o.rate} for o in outcomes], indent=2))
    else:
        print(render(outcomes, options))
    return 0 if all(o.refreshes == o.expected for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
