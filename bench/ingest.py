"""Throughput of the webhook receiver against a bare Flask route, side by side.

    .venv/bin/python bench/ingest.py [--duration 15] [--connections 32] [--rate 300]
                                     [--workers N] [--threads N] [--json]

The production shape: a fresh PostgreSQL database (relay_bench_<pid>), Redis db 14,
the receiver and bench/bare.py each under gunicorn with web.gunicorn_conf (same
workers, threads and worker class). No Celery worker runs: messages pile up in Redis.
Load comes from separate processes: wrk (apt-get install wrk) driven by a generated
Lua script, or a Python generator when wrk is missing; the fixed-rate run uses wrk2
when installed, else the Python generator in open loop. Every request is a distinct,
correctly signed Salla webhook, so none is answered as a cheap duplicate.

Runs bare -> receiver -> bare -> receiver so background noise hits both, prints the
mean ratio, then a fixed-rate run against the receiver, then checks that the inbox
holds exactly one row per 200 answer. Exits 1 when that check fails.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import project  # noqa: F401  (before anything imports worker)
import psycopg
import redis
from scratch import fresh_database

from web import gunicorn_conf
from worker import runtime
from worker.config import load_settings
from worker.platforms.base import StoreUpdate
from worker.platforms.salla import samples
from worker.storage.migrate import upgrade
from worker.stores import save_store

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("RELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
MERCHANT = "1234509876"
SECRET = "bench-salla-webhook-secret"
ROUTE = "/webhooks/salla"
APPS = {"bare": "bench.bare:app", "receiver": "web:create_app()"}
EVENTS = ("order.created", "order.updated", "order.status.updated", "customer.updated")
CEILING = 4000  # req/s a payload window is sized for; a faster run reuses payloads
DRAIN = 2  # seconds wrk runs past the window so that every POST sent gets its answer
MARK = "BENCH-RESULT "
COUNTS = ("answered", "ok", "other", "errors", "wrapped")
PCTS = ("p50_ms", "p99_ms")
HEADERS = {"Content-Type": "application/json", "X-Salla-Security-Strategy": "Signature"}

LUA = """\
-- Written by bench/ingest.py. Thread N POSTs the pre-signed webhooks of <prefix>.N,
-- one "<signature> <body>" per line. Once <seconds> have passed every connection
-- goes quiet (an empty request), so each POST sent is answered before wrk stops and
-- the inbox count can match the 200 answers exactly. wrk has no clock: LuaJIT's ffi.
local ffi = require("ffi")
ffi.cdef("typedef struct { long sec; long nsec; } bench_ts; int clock_gettime(int, bench_ts *);")
local clock = ffi.new("bench_ts")

local function now()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.sec) + tonumber(clock.nsec) / 1e9
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  payloads = assert(io.open(args[1] .. "." .. id, "rb"))
  deadline = now() + tonumber(args[2])
  fields = {["Content-Type"] = "application/json", ["X-Salla-Security-Strategy"] = "Signature"}
  answered, ok, other, wrapped = 0, 0, 0, 0
end

function request()
  if now() >= deadline then return "" end
  local line = payloads:read("*l")
  if line == nil then
    wrapped = wrapped + 1
    payloads:seek("set")
    line = payloads:read("*l")
  end
  local space = line:find(" ", 1, true)
  fields["X-Salla-Signature"] = line:sub(1, space - 1)
  return wrk.format("POST", nil, fields, line:sub(space + 1))
end

function response(status, headers, body)
  if now() < deadline then answered = answered + 1 end
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total = {answered = 0, ok = 0, other = 0, wrapped = 0}
  for _, thread in ipairs(threads) do
    for name, value in pairs(total) do total[name] = value + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format(
    '@MARK@{"answered": %d, "ok": %d, "other": %d, "wrapped": %d, "errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\\n', total.answered, total.ok, total.other, total.wrapped,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
""".replace("@MARK@", MARK)


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    connections: int
    rate: int
    rounds: int
    workers: int | None
    threads: int | None
    json: bool


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--duration", type=_positive, default=15, help="seconds measured per run (15)")
    add("--warmup", type=_positive, default=3, help="seconds of warm-up before each run (3)")
    add("--connections", type=_positive, default=32, help="concurrent connections (32)")
    add("--rate", type=_positive, default=300, help="requests/s of the fixed-rate run (300)")
    add("--rounds", type=_positive, default=2, help="bare/receiver pairs to average (2)")
    add("--workers", type=_positive, help="gunicorn --workers for both apps (default: conf)")
    add("--threads", type=_positive, help="gunicorn --threads for both apps (default: conf)")
    add("--json", action="store_true", help="print the results as JSON")
    return Options(**vars(parser.parse_args(argv)))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Payloads ------------------------------------------------------------------------------


class PayloadPool:
    """Distinct signed webhooks, written per run window into one file per load thread."""

    def __init__(self, directory: Path, files: int) -> None:
        directory.mkdir()
        self.directory, self.files = directory, files
        self._serial = itertools.count()
        self._windows = itertools.count()

    def window(self, seconds: float, rate: float) -> Path:
        """Fresh payloads for ``seconds`` at ``rate``; files are ``<prefix>.0`` and up."""
        prefix = self.directory / f"window-{next(self._windows)}"
        per_file = math.ceil(seconds * rate / self.files) + 100
        for index in range(self.files):
            lines = [payload_line(next(self._serial)) for _ in range(per_file)]
            Path(f"{prefix}.{index}").write_bytes(b"".join(lines))
        return prefix


def payload_line(serial: int) -> bytes:
    """``<signature> <body>``: a webhook with its own customer id (and order id)."""
    event = EVENTS[serial % len(EVENTS)]
    document = samples.sample_event(event, MERCHANT, str(1_000_000_000 + serial))
    if event.startswith("order."):
        document["data"]["id"] = 7_000_000_000 + serial
    body = samples.encode(document)
    signature = samples.signed_headers(body, SECRET)["X-Salla-Signature"]
    return signature.encode() + b" " + body + b"\n"


# Results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One load run. ``answered`` counts answers inside the timed window (throughput);
    ``ok``/``other`` count every answer, the drain after the window included."""

    seconds: float
    answered: int
    ok: int
    other: int
    errors: int  # connect, read, write and timeout errors
    wrapped: int  # times a payload file ran out and was sent again
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.answered / self.seconds


@dataclass
class Tally:
    """What the Python generator saw; latencies in seconds."""

    answered: int = 0
    ok: int = 0
    other: int = 0
    errors: int = 0
    wrapped: int = 0
    latencies: list[float] = field(default_factory=list)

    def record(self, status: int | None, due: float, finished: float, deadline: float) -> None:
        if status is None:
            self.errors += 1
            return
        self.latencies.append(finished - due)
        self.answered += finished < deadline
        self.ok += status == 200
        self.other += status != 200

    def add(self, other: Tally) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies.extend(other.latencies)

    def load(self, seconds: float) -> Load:
        ordered = sorted(self.latencies) or [0.0]
        p50, p99 = (ordered[math.ceil(p * len(ordered)) - 1] * 1000 for p in (0.50, 0.99))
        counts = {name: getattr(self, name) for name in COUNTS}
        return Load(seconds=seconds, p50_ms=p50, p99_ms=p99, **counts)


# Load from wrk -------------------------------------------------------------------------


def run_wrk(binary: str, script: Path, port: int, prefix: Path, job: Job) -> Load:
    command = [binary, "-t", str(job.files), "-c", str(job.connections)]
    command += ["-d", f"{job.seconds + DRAIN}s", "--timeout", "10s", "-s", str(script)]
    command += ["-R", str(job.rate)] if job.rate else []
    command += [f"http://127.0.0.1:{port}{ROUTE}", "--", str(prefix), str(job.seconds)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=job.seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"{binary} exited {done.returncode}, no result:\n{done.stderr}")
    found = json.loads(lines[0][len(MARK) :])
    counts: dict[str, int] = {name: found[name] for name in COUNTS}
    p50, p99 = found["p50_us"] / 1000, found["p99_us"] / 1000
    return Load(seconds=job.seconds, p50_ms=p50, p99_ms=p99, **counts)


# Load from Python (when wrk is missing, and in open loop for the fixed rate) -----------


@dataclass(frozen=True)
class Job:
    seconds: int
    connections: int
    files: int  # load threads (wrk) or processes (Python), one payload file each
    rate: int | None = None  # None: closed loop, as fast as answers come


@dataclass(frozen=True)
class Lanes:
    """One generator process: its payload file and connection lanes."""

    port: int
    path: str
    start: float  # time.monotonic() when the window opens, shared by every process
    job: Job
    lanes: range

    def due(self, lane: int, sent: int) -> float:
        """When a lane sends its next request; open loop measures latency from here."""
        if self.job.rate is None:
            return max(time.monotonic(), self.start)
        return self.start + (lane + sent * self.job.connections) / self.job.rate


class PayloadFile:
    """One process's payloads, handed out in order to its threads."""

    def __init__(self, path: str) -> None:
        self._lines = [line.split(b" ", 1) for line in Path(path).read_bytes().splitlines()]
        self._next, self.wrapped = 0, 0
        self._lock = threading.Lock()

    def take(self) -> tuple[str, bytes]:
        with self._lock:
            if self._next == len(self._lines):
                self._next, self.wrapped = 0, self.wrapped + 1
            signature, body = self._lines[self._next]
            self._next += 1
        return signature.decode(), body


def run_python(port: int, prefix: Path, job: Job) -> Load:
    start = time.monotonic() + 1.0  # every process has read its payloads by then
    plans = [
        Lanes(port, f"{prefix}.{index}", start, job, range(index, job.connections, job.files))
        for index in range(job.files)
    ]
    with multiprocessing.get_context("fork").Pool(job.files, quiet_child) as pool:
        tallies = pool.map(generate, plans)
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total.load(job.seconds)


def quiet_child() -> None:
    """The parent handles Ctrl-C and stops the pool; children just go."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def generate(plan: Lanes) -> Tally:
    payloads = PayloadFile(plan.path)
    tallies = {lane: Tally() for lane in plan.lanes}
    workers = [
        threading.Thread(target=run_lane, args=(plan, lane, payloads, tally))
        for lane, tally in tallies.items()
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally(wrapped=payloads.wrapped)
    for tally in tallies.values():
        total.add(tally)
    return total


def run_lane(plan: Lanes, lane: int, payloads: PayloadFile, tally: Tally) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=10)
    deadline = plan.start + plan.job.seconds
    for sent in itertools.count():
        due = plan.due(lane, sent)
        if due >= deadline:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        status = post(connection, *payloads.take())
        tally.record(status, due, time.monotonic(), deadline)
    connection.close()


def post(connection: http.client.HTTPConnection, signature: str, body: bytes) -> int | None:
    try:
        connection.request("POST", ROUTE, body, HEADERS | {"X-Salla-Signature": signature})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        connection.close()  # the next request reconnects
        return None
    return response.status


@dataclass(frozen=True)
class Loader:
    """Chooses the load generator; every one runs outside this process."""

    wrk: str | None
    wrk2: str | None
    script: Path
    files: int

    def run(self, port: int, prefix: Path, job: Job) -> Load:
        binary = self.wrk2 if job.rate else self.wrk
        if binary:
            return run_wrk(binary, self.script, port, prefix, job)
        return run_python(port, prefix, job)

    def names(self) -> dict[str, str]:
        return {
            "throughput": "wrk" if self.wrk else "python (closed loop)",
            "fixed_rate": "wrk2" if self.wrk2 else "python (open loop)",
        }


def make_loader(directory: Path, connections: int) -> Loader:
    wrk, wrk2 = shutil.which("wrk"), shutil.which("wrk2")
    if wrk is None:
        progress("wrk not found: using the Python load generator, which needs CPU itself.")
        progress("  For steadier numbers: apt-get install -y wrk")
    script = directory / "ingest.lua"
    script.write_text(LUA)
    return Loader(wrk, wrk2, script, files=min(connections, os.cpu_count() or 2))


# The environment -----------------------------------------------------------------------


@contextmanager
def flushed_redis(url: str) -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def relay_env(directory: Path, dsn: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        "REDIS_URL": REDIS_URL,
        "RELAY_SECRET_KEY": "bench-secret-key",
        "SALLA_WEBHOOK_SECRET": SECRET,
        "RELAY_DATA_DIR": str(directory / "data"),
        "RELAY_LOG_LEVEL": "WARNING",
    }


def prepare_schema(env: Mapping[str, str]) -> None:
    relay = runtime.configure(load_settings(env))
    try:
        upgrade(relay.engine)
        credentials = {"access_token": "bench-access", "refresh_token": "bench-refresh"}
        with relay.transaction() as session:
            update = StoreUpdate(status="active", credentials=credentials)
            save_store(relay, session, "salla", MERCHANT, update)
    finally:
        runtime.configure_none()


@contextmanager
def gunicorn(app: str, env: Mapping[str, str], options: Options, log: Path) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", *worker_flags(options), app]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=output, stderr=output, start_new_session=True
        )
    try:
        wait_until_up(process, port, log)
        yield port
    finally:
        stop(process)


def worker_flags(options: Options) -> list[str]:
    flags = ["--workers", str(options.workers)] if options.workers else []
    return flags + (["--threads", str(options.threads)] if options.threads else [])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited {process.returncode}:\n{log.read_text()}")
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            probe.request("GET", "/healthz")
            probe.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            probe.close()
    raise RuntimeError(f"gunicorn did not answer on port {port}:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the session started for it: master and workers
        process.wait()


def ignore_interrupts() -> None:
    """Let teardown finish: a second Ctrl-C must not leave servers or the database."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


@dataclass
class Bench:
    env: dict[str, str]
    ports: dict[str, int]
    pool: PayloadPool
    loader: Loader
    dsn: str
    redis: redis.Redis[bytes]
    logs: list[Path]
    loads: dict[str, list[Load]] = field(default_factory=lambda: {app: [] for app in APPS})

    def load(self, target: str, prefix: Path, job: Job) -> Load:
        result = self.loader.run(self.ports[target], prefix, job)
        self.loads[target].append(result)
        return result


@contextmanager
def bench_environment(options: Options) -> Iterator[Bench]:
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relay-bench-")))
        dsn = stack.enter_context(fresh_database(f"relay_bench_{os.getpid()}"))
        client = stack.enter_context(flushed_redis(REDIS_URL))
        env = relay_env(directory, dsn)
        progress(f"database {dsn.rsplit('/', 1)[1]}: migrating, registering store {MERCHANT}")
        prepare_schema(env)
        logs = {app: directory / f"{app}.log" for app in APPS}
        ports = {
            app: stack.enter_context(gunicorn(APPS[app], env, options, logs[app])) for app in APPS
        }
        loader = make_loader(directory, options.connections)
        stack.callback(ignore_interrupts)
        pool = PayloadPool(directory / "payloads", loader.files)
        yield Bench(env, ports, pool, loader, dsn, client, list(logs.values()))


# The runs ------------------------------------------------------------------------------


def run_round(bench: Bench, options: Options, number: int) -> dict[str, Load]:
    """Both targets on the same payloads; the receiver never sees one twice."""
    warmup = bench.pool.window(options.warmup, CEILING)
    timed = bench.pool.window(options.duration, CEILING)
    files, connections = bench.loader.files, options.connections
    measured = {}
    for target in APPS:
        progress(f"round {number}: {target}, {options.warmup} s warm-up + {options.duration} s")
        bench.load(target, warmup, Job(options.warmup, connections, files))
        measured[target] = bench.load(target, timed, Job(options.duration, connections, files))
        progress(f"  {row(target, measured[target])}")
    return measured


def run_fixed_rate(bench: Bench, options: Options) -> Load:
    rate, files, connections = options.rate, bench.loader.files, options.connections
    progress(
        f"fixed rate: receiver at {rate} req/s, {options.warmup} s warm-up + {options.duration} s"
    )
    for seconds in (options.warmup, options.duration):
        prefix = bench.pool.window(seconds, rate * 1.2)
        result = bench.load("receiver", prefix, Job(seconds, connections, files, rate))
    progress(f"  {row('receiver', result)}")
    return result


@dataclass(frozen=True)
class Check:
    rows: int
    ok: int  # 200 answers from the receiver, warm-ups included
    not_200: int  # from either target
    errors: int
    wrapped: int  # receiver payload files reused: duplicates were sent
    queued: int  # Celery messages waiting in Redis

    @property
    def passed(self) -> bool:
        return self.rows == self.ok and self.not_200 == 0 and self.errors == 0


def verify(bench: Bench) -> Check:
    everything = [load for loads in bench.loads.values() for load in loads]
    receiver = bench.loads["receiver"]
    with psycopg.connect(bench.dsn) as connection:
        found = connection.execute("SELECT count(*) FROM inbox_events").fetchone()
    check = Check(
        rows=found[0] if found else 0,
        ok=sum(load.ok for load in receiver),
        not_200=sum(load.other for load in everything),
        errors=sum(load.errors for load in everything),
        wrapped=sum(load.wrapped for load in receiver),
        queued=int(bench.redis.llen("events")),
    )
    if not check.passed:
        for log in bench.logs:
            progress(
                f"--- {log.name} (last lines)\n" + "".join(log.read_text().splitlines(True)[-30:])
            )
    return check


# Reporting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    setup: dict[str, Any]
    rounds: list[dict[str, Load]]
    fixed: Load
    check: Check

    @property
    def ratios(self) -> list[float]:
        return [pair["receiver"].rps / pair["bare"].rps for pair in self.rounds]

    def mean(self, target: str) -> Load:
        """Every round of ``target`` together: summed counts, mean percentiles."""
        loads = [pair[target] for pair in self.rounds]
        summed = {name: sum(getattr(load, name) for load in loads) for name in COUNTS}
        p50, p99 = (statistics.fmean(getattr(load, name) for load in loads) for name in PCTS)
        seconds = sum(load.seconds for load in loads)
        return Load(seconds=seconds, p50_ms=p50, p99_ms=p99, **summed)

    def as_json(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "rounds": [
                {app: _load_json(load) for app, load in pair.items()} for pair in self.rounds
            ],
            "mean": {app: _load_json(self.mean(app)) for app in APPS},
            "ratio": statistics.fmean(self.ratios),
            "ratios": self.ratios,
            "fixed_rate": _load_json(self.fixed),
            "check": asdict(self.check) | {"passed": self.check.passed},
        }


def _load_json(load: Load) -> dict[str, Any]:
    return asdict(load) | {"rps": load.rps}


def row(name: str, load: Load) -> str:
    return f"{name:<13}{load.rps:>9.1f}{load.p50_ms:>9.1f}{load.p99_ms:>9.1f}"


def render_table(results: Results, options: Options) -> str:
    lines = [
        _setup_line(results.setup),
        f"{'target':<13}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for number, pair in enumerate(results.rounds, 1):
        lines += [row(f"{target} #{number}", load) for target, load in pair.items()]
    lines += [row(target, results.mean(target)) for target in APPS]
    ratio = statistics.fmean(results.ratios)
    each = ", ".join(f"{value:.2f}" for value in results.ratios)
    lines.append(
        f"ratio receiver/bare: {ratio:.2f} ({each})   (target >= 0.5: {_met(ratio >= 0.5)})"
    )
    fixed = results.fixed
    lines.append(
        f"fixed {options.rate} req/s: p50 {fixed.p50_ms:.1f} ms, p99 {fixed.p99_ms:.1f} ms at "
        f"{fixed.rps:.1f} req/s (target < 50 ms: {_met(fixed.p99_ms < 50)})"
    )
    check = results.check
    verdict = "OK" if check.passed else "FAILED"
    lines.append(
        f"inbox rows: {check.rows} {'==' if check.rows == check.ok else '!='} 200 answers: "
        f"{check.ok}; non-200: {check.not_200}; socket errors: {check.errors}; "
        f"payloads reused: {check.wrapped}; queued messages: {check.queued} -> {verdict}"
    )
    return "\n".join(lines)


def _setup_line(setup: dict[str, Any]) -> str:
    per_worker = (
        f"{setup['threads']} threads"
        if setup["worker_class"] == "gthread"
        else f"{setup['worker_connections']} connections"
    )
    loaders, server = setup["loaders"], f"{setup['workers']} workers x {per_worker}"
    return (
        f"load: {loaders['throughput']}, fixed rate: {loaders['fixed_rate']}; "
        f"gunicorn {setup['worker_class']} {server}; {setup['cores']} cores; "
        f"{setup['connections']} connections; "
        f"{setup['duration']} s runs after {setup['warmup']} s warm-up; "
        f"load average before start {setup['load_average_before']:.1f}"
    )


def _met(met: bool) -> str:
    return "met" if met else "MISSED"


def describe(loader: Loader, options: Options, env: Mapping[str, str]) -> dict[str, Any]:
    """The server settings both apps ran with (gunicorn_conf reads the same environment)."""
    return {
        "loaders": loader.names(),
        "worker_class": gunicorn_conf.choose_worker_class(env),
        "workers": options.workers or gunicorn_conf.workers,
        "threads": options.threads or gunicorn_conf.threads,
        "worker_connections": gunicorn_conf.worker_connections,
        "cores": os.cpu_count(),
        "connections": options.connections,
        "duration": options.duration,
        "warmup": options.warmup,
        "rate": options.rate,
    }


def run(options: Options) -> Results:
    busy = os.getloadavg()[0]  # other work on the machine skews both targets: say so
    with bench_environment(options) as bench:
        rounds = [run_round(bench, options, number) for number in range(1, options.rounds + 1)]
        fixed = run_fixed_rate(bench, options)
        setup = describe(bench.loader, options, bench.env) | {"load_average_before": busy}
        return Results(setup, rounds, fixed, verify(bench))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    try:
        results = run(options)
    except KeyboardInterrupt:
        progress("interrupted: servers stopped, database dropped, Redis flushed")
        return 130
    print(
        json.dumps(results.as_json(), indent=2) if options.json else render_table(results, options)
    )
    return 0 if results.check.passed else 1


if __name__ == "__main__":
    sys.exit(main())
