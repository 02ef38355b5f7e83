"""The one place outbound HTTP clients are built, and where the URL policy meets them.

Every platform client and sink gets its ``httpx.Client`` from here so that
timeouts, User-Agent, ``Accept: application/json`` (Salla's WAF answers an HTML
403 without both) and connection pooling are the same everywhere. One client
per process, created lazily; tests point base URLs at local servers.

The policy (``worker.url_policy``: https only, globally routable addresses
only) is checked when a URL is configured (``url_policy.check_url``: a readable
refusal in the CLI) and again on every new connection (``PolicyBackend``): the name is
resolved there, each address checked, and the socket opened to the checked
address itself, so a name that resolves to a public address at configuration
time and to ``127.0.0.1`` later (DNS rebinding) is refused.
``RELAY_ALLOW_PRIVATE_URLS=1`` lifts the policy for local development, the
sandboxes and the tests. Same approach as healthchecks/healthchecks
``hc/lib/curl.py`` (private-IP blocking in the one HTTP module).

The clients keep no cookies (``Client``): one client serves every store of a
platform, and every merchant's webhook endpoints, so a cookie one store's answer
set would go out with the next store's request to the same host.

How an answer is read lives here too, so that every platform client and sink
reads it alike (``retry_after``, ``raise_for_status``); callers add only their
wording and the statuses that mean something special to their service.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.cookiejar import Cookie, CookieJar

import httpcore
import httpx

from worker import metrics
from worker.errors import NeedsReauthorization, PermanentError, RelayError, TransientError
from worker.url_policy import DestinationRefused, check_addresses, resolve

USER_AGENT = "loyalty-relay/0.1 (+https://github.com/loyalty-relay)"
LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=20)

MAX_RETRY_AFTER = 3600.0  # a server asking for a day's pause is a bug, not a plan
MIN_RETRY_AFTER = 1.0  # "come back now" still waits a second
EPOCH_THRESHOLD = 1_000_000_000  # X-RateLimit-Reset below this is a delay, not a timestamp
TRANSIENT_STATUSES = frozenset({408, 429})

_lock = threading.Lock()
_clients: dict[tuple[float, bool, str | None], httpx.Client] = {}


def build_client(
    timeout: float = 10.0, *, allow_private: bool = False, counted_as: str | None = None
) -> httpx.Client:
    """``counted_as``: the platform whose calls are counted (``relay_platform_requests_total``)."""
    options = {
        "timeout": httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        "follow_redirects": False,
    }
    if allow_private and counted_as is None:
        return Client(limits=LIMITS, **options)  # type: ignore[arg-type]
    transport: httpx.BaseTransport = (
        httpx.HTTPTransport(limits=LIMITS) if allow_private else PolicyTransport()
    )
    if counted_as is not None:
        transport = CountedTransport(transport, counted_as)
    # trust_env=False: an HTTP(S)_PROXY from the environment would get its own
    # transport, and every request would bypass the policy (and the count) below.
    return Client(transport=transport, trust_env=False, **options)  # type: ignore[arg-type]


def shared_client(
    timeout: float = 10.0, *, allow_private: bool = False, counted_as: str | None = None
) -> httpx.Client:
    """The process-wide client for ``timeout`` (pooled connections, thread-safe);
    a platform's calls go through one of its own, which counts them."""
    key = (timeout, allow_private, counted_as)
    with _lock:
        client = _clients.get(key)
        if client is None or client.is_closed:
            client = _clients[key] = build_client(
                timeout, allow_private=allow_private, counted_as=counted_as
            )
        return client


class _KeepNothing(CookieJar):
    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing, so sends nothing: neither what an answer sets nor what
    code sets by hand."""

    def __init__(self) -> None:
        super().__init__(_KeepNothing())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class Client(httpx.Client):
    """httpx's client, keeping no cookies.

    It is shared by every store (``shared_client``), so an answer's ``Set-Cookie``
    must not reach another store's request; no platform API or sink needs a cookie.
    Reading ``Set-Cookie`` into a jar also cost about a tenth of a request's CPU in
    httpx (a ``urllib.request.Request`` built per answer).
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("loyalty-relay's HTTP clients keep no cookies")


class PolicyBackend(httpcore.SyncBackend):
    """Opens each connection to an address it has just resolved and checked."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except socket.gaierror as exc:  # transient: DNS may answer next time
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        check_addresses(host, addresses)
        # TLS still verifies the certificate against ``host`` (httpcore passes the
        # origin's name as server_hostname); only the socket uses the checked address.
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


class PolicyTransport(httpx.HTTPTransport):
    """httpx's transport with https enforced per request and ``PolicyBackend`` underneath."""

    def __init__(self) -> None:
        super().__init__(limits=LIMITS, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=PolicyBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            raise DestinationRefused(
                f"refusing {request.url.scheme}://{request.url.host}: only https is allowed"
            )
        return super().handle_request(request)


_calling_for: ContextVar[str | None] = ContextVar("relay_calling_for", default=None)


@contextmanager
def calls_for(store_key: str) -> Iterator[None]:
    """Platform calls made inside count for ``store_key`` as well (the clients are
    shared by every store of a platform, so the store travels beside the call)."""
    token = _calling_for.set(store_key)
    try:
        yield
    finally:
        _calling_for.reset(token)


class CountedTransport(httpx.BaseTransport):
    """Counts every call to one platform's API by its answer's status, or ``error``
    when none came, and for the store it was made for (``calls_for``): the one place
    all platform clients' requests pass."""

    def __init__(self, inner: httpx.BaseTransport, platform: str) -> None:
        self._inner, self._platform = inner, platform

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except Exception:
            metrics.platform_request(self._platform, None, _calling_for.get())
            raise
        metrics.platform_request(self._platform, response.status_code, _calling_for.get())
        return response

    def close(self) -> None:
        self._inner.close()


# --- reading answers ----------------------------------------------------------------------


def parse_retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (RFC 9110: delta-seconds or an HTTP-date),
    between 0 and ``MAX_RETRY_AFTER``.

    Junk (a word, a decimal) gives ``None``, so the caller's default applies; a
    date in the past gives 0.
    """
    if header is None or not header.strip():
        return None
    value = header.strip()
    seconds = float(value) if value.isascii() and value.isdigit() else _seconds_until(value, now)
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_after(
    headers: Mapping[str, str],
    *,
    default: float | None = None,
    reset: bool = False,
    now: datetime | None = None,
) -> float | None:
    """How long the server asked us to wait, between ``MIN_RETRY_AFTER`` and ``MAX_RETRY_AFTER``.

    ``Retry-After`` first; with ``reset=True`` then ``X-RateLimit-Reset`` (epoch
    seconds, or a delay when small: Salla sends it); else ``default``.
    """
    seconds = parse_retry_after(header_value(headers, "retry-after"), now)
    if seconds is None and reset:
        seconds = _reset_seconds(header_value(headers, "x-ratelimit-reset"), now)
    if seconds is None:
        return default
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (``httpx.Headers`` or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def _reset_seconds(raw: str | None, now: datetime | None) -> float | None:
    try:
        reset = float(raw) if raw is not None else None
    except ValueError:
        return None
    if reset is None or not math.isfinite(reset):
        return None
    if reset < EPOCH_THRESHOLD:
        return reset
    return reset - (now or datetime.now(UTC)).timestamp()


@dataclass(frozen=True)
class Wording:
    """A caller's words for what an answer means; ``{status}`` (``503``),
    ``{phrase}`` (``503 Service Unavailable``) and ``{detail}`` are filled in."""

    answered: str  # the default, and the words for 408/5xx
    rate_limited: str | None = None  # 429
    reauthorize: str | None = None  # the statuses the caller names as refused credentials
    refused: str | None = None  # any other status that will not change by retrying
    detail: str = ""

    def say(self, template: str, status: int) -> str:
        return template.format(status=status, phrase=describe_status(status), detail=self.detail)


def raise_for_status(
    status: int,
    headers: Mapping[str, str],
    wording: Wording,
    *,
    rate_limit_wait: float | None = None,
    reset: bool = False,
    reauthorize: Collection[int] = (),
    wait: float | None = None,
    now: datetime | None = None,
) -> None:
    """Raise the failure an answer's status means; return quietly for 2xx.

    408, 429 and 5xx come back later (``TransientError``, after ``Retry-After``
    when given; a 429 without one waits ``rate_limit_wait``); the statuses in
    ``reauthorize`` mean the credentials are refused (``NeedsReauthorization``);
    every other status — 3xx included: redirects are not followed — will not
    change by retrying (``PermanentError``). Statuses with a meaning of their
    own to one service (a 410 to a webhook, Salla's 403 block) are read by the
    caller before it calls this. ``wait`` is a wait the caller has read from
    headers of its service's own (HubSpot's window), used before ``Retry-After``.
    """
    if 200 <= status <= 299:
        return
    if status in TRANSIENT_STATUSES or 500 <= status <= 599:
        default = rate_limit_wait if status == 429 else None
        if wait is None:
            wait = retry_after(headers, default=default, reset=reset and status == 429, now=now)
        template = wording.rate_limited if status == 429 and wording.rate_limited else None
        message = wording.say(template or wording.answered, status)
        raise _answered(TransientError(message, retry_after=wait), status)
    if status in reauthorize:
        message = wording.say(wording.reauthorize or wording.answered, status)
        raise _answered(NeedsReauthorization(message), status)
    message = wording.say(wording.refused or wording.answered, status)
    raise _answered(PermanentError(message), status)


def _answered(error: RelayError, status: int) -> RelayError:
    error.status_code = status
    return error


def describe_status(status: int) -> str:
    """``410 Gone``: the code with its reason phrase, for messages ops read."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
