"""All configuration, read from the environment in one place and parsed strictly.

Nothing reads ``os.environ`` at import time: ``load_settings()`` is called by the
app factory, the Celery app and the CLI. Secrets may come from ``NAME_FILE``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.crypto import generate_key, is_fernet_key
from worker.url_policy import DestinationRefused, check_url

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    secret_key: str
    production: bool = False
    salla_webhook_secrets: tuple[str, ...] = ()
    salla_client_id: str = ""
    salla_client_secret: str = ""
    salla_oauth_token_url: str = "https://accounts.salla.sa/oauth2/token"
    salla_api_base: str = "https://api.salla.dev/admin/v2"
    salla_quota: tuple[int, float] = (500, 600.0)
    zid_client_id: str = ""
    zid_client_secret: str = ""
    zid_redirect_uri: str = ""
    zid_oauth_token_url: str = "https://oauth.zid.sa/oauth/token"
    zid_api_base: str = "https://api.zid.sa/v1"
    zid_app_id: str = ""
    zid_quota: tuple[int, float] = (60, 60.0)
    zid_app_webhook_token: str = ""
    zid_refresh_window_days: int = 60
    shopify_webhook_secrets: tuple[str, ...] = ()
    appstle_api_base: str = "https://loyalty-admin.appstle.com"
    appstle_quota: tuple[int, float] = (120, 60.0)
    default_timezone: str = "Asia/Riyadh"
    max_body_bytes: int = 256 * 1024
    body_timeout_seconds: float = 10.0  # the whole body, however slowly it trickles in
    store_wait_seconds: float = 900.0  # an event for a store not yet installed waits this long
    debounce_seconds: float = 5.0
    settle_delays: tuple[float, ...] = (60.0, 600.0)
    stale_after_seconds: float = 300.0
    sweep_interval_seconds: float = 30.0
    dispatch_interval_seconds: float = 1.0  # beat's relay.dispatch: due work waits at most this
    delivery_max_attempts: int = 10
    reminder_days: int = 7
    reminder_hour: int = 10
    reconcile_after_hours: float = 24.0
    reconcile_share: float = 0.25  # of each store's API budget, spare capacity only
    retention_days: int = 14  # processed inbox rows, finished jobs, sent deliveries
    retention_dead_days: int = 30  # dead deliveries (kept longer for replay)
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    http_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line
    allow_private_urls: bool = False  # local development and the sandboxes only
    templates_dir: Path | None = None  # merchant overrides for every store's emails
    # Sink health (``worker.pipeline.breaker``): this many consecutive failed attempts
    # pause a sink until a probe succeeds; 0 turns the breaker off.
    breaker_failures: int = 10
    # The /ops dashboard (web.ops): off unless one of these is set.
    ops_users: tuple[tuple[str, str], ...] = ()  # (user, werkzeug password hash)
    ops_token: str = ""  # a Bearer token for scripts
    # --- metrics: /metrics on a port of its own (worker.metrics_server) ---
    metrics_port: int | None = None
    # --- the worker pool (README, "Worker concurrency": chosen by bench/worker.py) ---
    worker_concurrency: int = 8  # prefork processes; default WORKER_PROCESSES_PER_CORE per core

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def ops_enabled(self) -> bool:
        return bool(self.ops_users or self.ops_token)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    production = _bool(env, "RELAY_ENV_PRODUCTION", False) or env.get("RELAY_ENV") == "production"
    data_dir = Path(env.get("RELAY_DATA_DIR", "./var")).resolve()
    database_url = _normalise_db_url(
        env.get("DATABASE_URL") or f"sqlite:///{data_dir}/relay.sqlite3"
    )
    allow_private = _bool(env, "RELAY_ALLOW_PRIVATE_URLS", False)

    def url(name: str, default: str) -> str:
        return _url(env, name, default, allow_private)

    broker_url = (
        env.get("REDIS_URL")
        or env.get("CELERY_BROKER_URL")
        or (f"sqla+sqlite:///{data_dir}/broker.sqlite3")
    )
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker_url,
        secret_key=_secret_key(env, data_dir, production),
        production=production,
        salla_webhook_secrets=_secrets(
            env, "SALLA_WEBHOOK_SECRET", "SALLA_WEBHOOK_SECRET_PREVIOUS"
        ),
        salla_client_id=_secret(env, "SALLA_CLIENT_ID") or "",
        salla_client_secret=_secret(env, "SALLA_CLIENT_SECRET") or "",
        salla_oauth_token_url=url(
            "SALLA_OAUTH_TOKEN_URL", "https://accounts.salla.sa/oauth2/token"
        ),
        salla_api_base=url("SALLA_API_BASE", "https://api.salla.dev/admin/v2"),
        salla_quota=_quota(env, "RELAY_SALLA_QUOTA", (500, 600.0)),
        zid_client_id=_secret(env, "ZID_CLIENT_ID") or "",
        zid_client_secret=_secret(env, "ZID_CLIENT_SECRET") or "",
        zid_redirect_uri=env.get("ZID_REDIRECT_URI", ""),
        zid_oauth_token_url=url("ZID_OAUTH_TOKEN_URL", "https://oauth.zid.sa/oauth/token"),
        zid_api_base=url("ZID_API_BASE", "https://api.zid.sa/v1"),
        zid_app_id=env.get("ZID_APP_ID", ""),
        zid_quota=_quota(env, "RELAY_ZID_QUOTA", (60, 60.0)),
        zid_app_webhook_token=_secret(env, "ZID_APP_WEBHOOK_TOKEN") or "",
        zid_refresh_window_days=_int(env, "RELAY_ZID_REFRESH_WINDOW_DAYS", 60),
        shopify_webhook_secrets=_secrets(
            env, "SHOPIFY_CLIENT_SECRET", "SHOPIFY_CLIENT_SECRET_PREVIOUS"
        ),
        appstle_api_base=url("APPSTLE_API_BASE", "https://loyalty-admin.appstle.com"),
        appstle_quota=_quota(env, "RELAY_APPSTLE_QUOTA", (120, 60.0)),
        default_timezone=_timezone(env, "RELAY_DEFAULT_TIMEZONE", "Asia/Riyadh"),
        max_body_bytes=_int(env, "RELAY_MAX_BODY_BYTES", 256 * 1024),
        body_timeout_seconds=_float(env, "RELAY_BODY_TIMEOUT_SECONDS", 10.0),
        store_wait_seconds=_float(env, "RELAY_STORE_WAIT_SECONDS", 900.0),
        debounce_seconds=_float(env, "RELAY_DEBOUNCE_SECONDS", 5.0),
        settle_delays=_floats(env, "RELAY_SETTLE_DELAYS", (60.0, 600.0)),
        stale_after_seconds=_float(env, "RELAY_STALE_AFTER_SECONDS", 300.0),
        sweep_interval_seconds=_float(env, "RELAY_SWEEP_INTERVAL_SECONDS", 30.0),
        dispatch_interval_seconds=_float(env, "RELAY_DISPATCH_INTERVAL_SECONDS", 1.0),
        delivery_max_attempts=_int(env, "RELAY_DELIVERY_MAX_ATTEMPTS", 10),
        reminder_days=_int(env, "RELAY_REMINDER_DAYS", 7),
        reminder_hour=_hour(env, "RELAY_REMINDER_HOUR", 10),
        reconcile_after_hours=_float(env, "RELAY_RECONCILE_AFTER_HOURS", 24.0),
        reconcile_share=_share(env, "RELAY_RECONCILE_SHARE", 0.25),
        retention_days=_days(env, "RELAY_RETENTION_DAYS", 14),
        retention_dead_days=_days(env, "RELAY_RETENTION_DEAD_DAYS", 30),
        retry_base_seconds=_float(env, "RELAY_RETRY_BASE_SECONDS", 10.0),
        retry_max_seconds=_float(env, "RELAY_RETRY_MAX_SECONDS", 3600.0),
        http_timeout_seconds=_float(env, "RELAY_HTTP_TIMEOUT_SECONDS", 10.0),
        log_level=_log_level(env, "RELAY_LOG_LEVEL", "INFO"),
        log_format=_choice(env, "RELAY_LOG_FORMAT", ("text", "json")),
        allow_private_urls=allow_private,
        templates_dir=_directory(env, "RELAY_TEMPLATES_DIR"),
        breaker_failures=_int(env, "RELAY_BREAKER_FAILURES", 10),
        ops_users=_ops_users(env, "RELAY_OPS_USERS"),
        ops_token=_ops_token(env, "RELAY_OPS_TOKEN"),
        metrics_port=_port(env, "RELAY_METRICS_PORT"),
        worker_concurrency=_worker_concurrency(env),
    )


# A refresh waits on the platform's API for most of its time (two pages at ~50 ms
# against 55-60 ms of CPU, measured by bench/worker.py): a core keeps three processes
# busy today, and more as the CPU per refresh falls.
WORKER_PROCESSES_PER_CORE = 4


def default_worker_concurrency() -> int:
    """Per core this process may run on (a container's cpuset, not the host's count)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return WORKER_PROCESSES_PER_CORE * (cores or 1)


def _worker_concurrency(env: Mapping[str, str]) -> int:
    value = _int(env, "RELAY_WORKER_CONCURRENCY", default_worker_concurrency())
    if not 1 <= value <= 256:
        raise ConfigError(f"RELAY_WORKER_CONCURRENCY must be 1-256, got {value}")
    return value


def _normalise_db_url(url: str) -> str:
    # Heroku-style URLs name the scheme "postgres"; we always use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith(("postgresql+psycopg://", "sqlite:")):
        scheme = url.partition(":")[0] or "no scheme"
        raise ConfigError(
            f"DATABASE_URL must be postgresql://… or sqlite:///…, got {scheme[:20]}://…"
        )
    return url


def _secret(env: Mapping[str, str], name: str) -> str | None:
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    value = env.get(name)
    return value.strip() if value else None


def _secrets(env: Mapping[str, str], *names: str) -> tuple[str, ...]:
    return tuple(value for name in names if (value := _secret(env, name)))


MIN_PASSPHRASE = 16


def _secret_key(env: Mapping[str, str], data_dir: Path, production: bool) -> str:
    key = _secret(env, "RELAY_SECRET_KEY")
    if key:
        if production:
            _refuse_weak_keys(key)
        return key
    if production:
        raise ConfigError("RELAY_SECRET_KEY (or RELAY_SECRET_KEY_FILE) is required in production")
    return _generated_key(data_dir)


def _refuse_weak_keys(keys: str) -> None:
    """A Fernet key is 32 random bytes; a passphrase is only what was typed (see
    ``worker.crypto``), and production refuses a short one."""
    for key in (part.strip() for part in keys.split(",")):
        if key and not is_fernet_key(key) and len(key) < MIN_PASSPHRASE:
            raise ConfigError(
                f"RELAY_SECRET_KEY: a {len(key)}-character passphrase is too weak; use a "
                "Fernet key (`loyalty-relay keygen` prints one)"
            )


def _generated_key(data_dir: Path) -> str:
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "RELAY_SECRET_KEY is not set: generated one into %s. Back it up: "
        "stored credentials cannot be read without it.",
        path,
    )
    return key


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or value != value:
        raise ConfigError(f"{name} must be a non-negative number, got {raw!r}")
    return value


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value > 1:
        raise ConfigError(f"{name} must be a fraction between 0 and 1, got {env[name]!r}")
    return value


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1 (days), got {env[name]!r}")
    return value


def _floats(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    return tuple(_float({name: part}, name, 0.0) for part in parts)


def _quota(env: Mapping[str, str], name: str, default: tuple[int, float]) -> tuple[int, float]:
    raw = env.get(name)
    if not raw:
        return default
    count, _, seconds = raw.partition("/")
    limit = _int({name: count.strip()}, name, 0)
    window = _float({name: seconds.strip()}, name, 0.0)
    if limit < 1 or window <= 0:
        raise ConfigError(f"{name} must look like 500/600 (requests/seconds), got {raw!r}")
    return limit, window


def _directory(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_absolute() or not path.is_dir():
        raise ConfigError(f"{name} must be an absolute path to an existing folder, got {raw!r}")
    return path


def _hour(env: Mapping[str, str], name: str, default: int) -> int:
    hour = _int(env, name, default)
    if hour > 23:
        raise ConfigError(f"{name} must be an hour of the day (0-23), got {hour}")
    return hour


def _timezone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}: unknown time zone {value!r}") from None
    return value


def _url(env: Mapping[str, str], name: str, default: str, allow_private: bool) -> str:
    """An API base or token URL, held to the outbound URL policy (``worker.url_policy``)."""
    value = (env.get(name) or default).rstrip("/")
    try:
        return check_url(value, allow_private=allow_private, resolve_names=False)
    except DestinationRefused as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _log_level(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The first choice is the default."""
    value = (env.get(name) or choices[0]).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


HASH_METHODS = ("scrypt:", "pbkdf2:")  # what werkzeug.security.generate_password_hash writes
MIN_OPS_TOKEN = 24


def _ops_users(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """``user:hash,user:hash``; a werkzeug hash holds colons itself, so the user
    ends at the first one. A clear password where a hash belongs is refused."""
    raw = _secret(env, name) or ""
    users: dict[str, str] = {}
    for pair in (part.strip() for part in raw.split(",") if part.strip()):
        user, _, password_hash = pair.partition(":")
        if not user.strip() or not password_hash.startswith(HASH_METHODS):
            raise ConfigError(
                f"{name} must be user:password-hash pairs (`loyalty-relay ops-password` "
                f"prints a hash), got an entry for {user.strip()[:40] or 'no user'!r}"
            )
        if user.strip() in users:
            raise ConfigError(f"{name}: user {user.strip()[:40]!r} is listed twice")
        users[user.strip()] = password_hash
    return tuple(users.items())


def _ops_token(env: Mapping[str, str], name: str) -> str:
    token = _secret(env, name) or ""
    if token and len(token) < MIN_OPS_TOKEN:
        raise ConfigError(
            f"{name} must be at least {MIN_OPS_TOKEN} characters (e.g. `openssl rand -hex 32`)"
        )
    return token


def _port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = _int(env, name, 0)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {env[name]!r}")
    return port
