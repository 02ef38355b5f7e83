"""``worker.url_policy`` reads URLs as httpx does, without importing httpx.

The policy splits URLs itself so that the settings (read by the web process,
which never calls out) cost no HTTP client; httpx, which makes the calls, is
the judge of how a URL reads. Both readings meet on many URLs: hand-picked ones
where URL parsers disagree, and a fixed-seed corpus assembled from tricky parts
and random characters. The same scheme, host and port, the same refusals, and
``check_url`` gives the verdict (and the message) of the same check reading
with ``httpx.URL``. The one difference: where httpx lets idna's error out of
``URL.host`` (an ``xn--`` host that does not decode), ``check_url`` refuses the
URL as not valid.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from worker.url_policy import (
    Destination,
    DestinationRefused,
    InvalidURL,
    check_addresses,
    check_url,
    destination,
    ip_literal,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = 20
RANDOM_CASES = 4000

SCHEMES = ["https", "HTTPS", "Https", "http", "HTTP", "ftp", "ws", "wss", "", "h ttps", "1https"]
SEPARATORS = ["://", ":/", ":", "//", "", ":///", "://///", ":\\\\"]
USERINFO = ["", "user@", "u:p@", "a@b@", "@", "%40@", ":@", "u:p:q@"]
HOSTS = [
    "example.com",
    "EXAMPLE.com",
    "api.salla.dev",
    "127.0.0.1",
    "8.8.8.8",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "127.1",
    "0x7f000001",
    "0X7F.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[2606:4700:4700::1111]",
    "[fe80::1%eth0]",
    "[fe80::1%25eth0]",
    "[v1.x]",
    "[::1",
    "::1]",
    "::1",
    "[]",
    "[[::1]]",
    "",
    "exa mple.com",
    "exa[mple.com",
    "a_b.com",
    "a..b",
    ".",
    "-a.com",
    "a|b",
    "a%2fb",
    "%",
    "localhost",
    "LOCALHOST",
    "münchen.de",
    "MÜNCHEN.de",
    "xn--mnchen-3ya.de",
    "www.xn--mnchen-3ya.de",
    "xn--abc",
    "xn--",
    "中国.icom.museum",
    "☃.net",
    "ß.de",
    "\u200d.com",
    "ａｂｃ.com",
    "١٢٧.٠.٠.١",
]
PORTS = ["", ":", ":443", ":80", ":8443", ":0", ":-1", ":+1", ": 1", ":99999", ":abc", ":1:2"]
PORTS += [":٤٤٣", ":443 ", ":1_0"]
PATHS = ["", "/", "/hook", "/a/../b", "?q=1", "#f", "/x?y#z", "path", ":x", "//x", " /x", "/%zz"]
EDGES = ["", " ", "\t", "\n", "\x00", "\x7f", "\u00a0", "\u2028"]
ALPHABET = ":/?#[]@!$&'()*+,;=%.-_~ aZ09x\\\u00e9\u00df\u4e2d"

HAND_PICKED = [
    "https://api.salla.dev/admin/v2",
    "https://accounts.salla.sa/oauth2/token",
    "HTTPS://EXAMPLE.COM:443/",
    "https://example.com:443/",
    "https://example.com:-1/",
    "https://example.com:٤٤٣/",
    " https://example.com/",
    "https://example.com /",
    "https://[fe80::1%25eth0]/hook",
    "https://exa[mple.com/",
    "https://xn--mnchen-3ya.de/",
    "https://user:pass@example.com:8443/path?query#fragment",
    "//example.com/hook",
    "////example.com/hook",
    ":example",
    "https:example.com",
    "https:/example.com",
    "https://",
    "https:///hook",
    "https://:443/",
    "https://a.com" + "/a" * 40000,
]


Reading = tuple[str, str, int | None]  # scheme, host, port
UNDECODABLE = "(a host that does not decode)"


def httpx_reading(url: str) -> Reading | None:
    """What ``httpx.URL`` reads, or ``None`` for a URL it refuses."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    try:
        host = parsed.host
    except UnicodeError:  # idna's IDNAError, let through by httpx when the host is read
        host = UNDECODABLE
    return parsed.scheme, host, parsed.port


def policy_reading(url: str) -> Reading | None:
    try:
        parsed = destination(url)
    except InvalidURL:
        return None
    try:
        host = parsed.host
    except InvalidURL:
        host = UNDECODABLE
    return parsed.scheme, host, parsed.port


def httpx_check_url(url: str, *, allow_private: bool, resolve_names: bool = True) -> str:
    """The same check reading URLs with ``httpx.URL``: the judge of ``check_url``'s verdicts."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise DestinationRefused("not a valid URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes or not parsed.host:
        raise DestinationRefused(
            f"only https:// URLs are allowed, got {parsed.scheme or 'no'} scheme"
            + ("" if allow_private else " (RELAY_ALLOW_PRIVATE_URLS=1 allows http locally)")
        )
    if allow_private or not (resolve_names or ip_literal(parsed.host)):
        return url
    try:
        addresses = resolve(parsed.host, parsed.port or 443)
    except socket.gaierror:
        return url
    check_addresses(parsed.host, addresses)
    return url


def verdict(check: Callable[..., str], url: str, **options: bool) -> str:
    try:
        check(url, **options)
    except DestinationRefused as refused:
        return f"refused: {refused}"
    except UnicodeError as crash:
        return f"crashed: {type(crash).__name__}"
    return "accepted"


def assembled(rng: random.Random) -> str:
    return "".join(
        [
            rng.choice(EDGES) if rng.random() < 0.1 else "",
            rng.choice(SCHEMES),
            rng.choice(SEPARATORS),
            rng.choice(USERINFO),
            rng.choice(HOSTS),
            rng.choice(PORTS),
            rng.choice(PATHS),
            rng.choice(EDGES) if rng.random() < 0.1 else "",
        ]
    )


def scrambled(rng: random.Random) -> str:
    """A plausible start, then random URL-significant characters."""
    start = rng.choice(["https://", "http://", "//", "", "https:"])
    return start + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 24)))


def corpus() -> list[str]:
    rng = random.Random(SEED)
    urls = list(HAND_PICKED)
    urls += [assembled(rng) for _ in range(RANDOM_CASES)]
    urls += [scrambled(rng) for _ in range(RANDOM_CASES)]
    urls.append("https://example.com/" + "a" * 65536)  # past httpx's length limit
    return urls


CORPUS = corpus()


def test_the_corpus_holds_every_kind_of_reading() -> None:
    """The comparison below is only worth as much as its cases: both refused and
    accepted URLs, IP literals, IDNA hosts, ports kept and dropped."""
    readings = [httpx_reading(url) for url in CORPUS]
    accepted = [reading for reading in readings if reading is not None]
    assert sum(reading is None for reading in readings) > 500
    assert sum(scheme == "https" and host != "" for scheme, host, _ in accepted) > 300
    assert sum(ip_literal(host) is not None for _, host, _ in accepted) > 50
    assert sum(not host.isascii() for _, host, _ in accepted) > 20
    assert any(host == UNDECODABLE for _, host, _ in accepted)
    assert {None, 8443, -1} <= {port for _, _, port in accepted}


def test_it_reads_every_url_as_httpx_does() -> None:
    differences = {
        url: (policy_reading(url), httpx_reading(url))
        for url in CORPUS
        if policy_reading(url) != httpx_reading(url)
    }
    assert differences == {}


@pytest.mark.parametrize("allow_private", [False, True])
def test_it_gives_the_verdicts_of_the_httpx_check(allow_private: bool) -> None:
    """Settings read at start-up (``resolve_names=False``): no DNS involved."""
    options = {"allow_private": allow_private, "resolve_names": False}
    differences, crashed = {}, []
    for url in CORPUS:
        old, new = verdict(httpx_check_url, url, **options), verdict(check_url, url, **options)
        if old.startswith("crashed") and new == "refused: not a valid URL":
            crashed.append(url)
        elif old != new:
            differences[url] = (new, old)
    assert differences == {}
    assert crashed and all("xn--" in url.lower() for url in crashed)


def test_it_gives_the_verdicts_of_the_httpx_check_on_addresses_it_resolves() -> None:
    """``resolve_names=True`` where resolving asks no DNS server: address literals,
    in every spelling, and ``localhost`` (the hosts file)."""
    local = [
        url
        for url in CORPUS
        if (reading := httpx_reading(url)) is not None
        and (ip_literal(reading[1]) or reading[1] == "localhost")
    ]
    assert len(local) > 80
    differences = {
        url: (verdict(check_url, url, allow_private=False), old)
        for url in local
        if verdict(check_url, url, allow_private=False)
        != (old := verdict(httpx_check_url, url, allow_private=False))
    }
    assert differences == {}


@pytest.mark.parametrize(
    ("url", "reading"),
    [
        ("HTTPS://API.Salla.dev:443/x", ("https", "api.salla.dev", 443)),
        ("https://api.salla.dev:443/x", ("https", "api.salla.dev", None)),
        ("https://example.com:-1/", ("https", "example.com", -1)),
        ("https://example.com:٤٤٣/", ("https", "example.com", None)),
        ("https://[fe80::1%25eth0]/", ("https", "fe80::1%25eth0", None)),
        ("https://exa[mple.com/", ("https", "exa%5Bmple.com", None)),
        ("https://xn--mnchen-3ya.de/", ("https", "münchen.de", None)),
        ("https://MÜNCHEN.de/", ("https", "münchen.de", None)),
        (":example", ("", "", None)),
        (" https://example.com/", ("", "", None)),
        ("https://xn--abc/", ("https", UNDECODABLE, None)),
    ],
)
def test_it_keeps_httpx_s_quirks(url: str, reading: Reading) -> None:
    """Where httpx's reading surprises: an upper-case scheme keeps its default port,
    a negative port or Arabic-Indic digits are a number, a leading space or colon
    makes a relative URL."""
    assert policy_reading(url) == reading == httpx_reading(url)


def test_it_reads_the_host_only_for_a_scheme_it_allows() -> None:
    """As with httpx: an undecodable host behind a refused scheme is refused for the scheme."""
    with pytest.raises(DestinationRefused, match="got ftp scheme"):
        check_url("ftp://xn--abc/", allow_private=True)
    assert destination("https://xn--mnchen-3ya.de/") == Destination(
        "https", "xn--mnchen-3ya.de", None
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://exa mple.com\n/",
        "https://256.1.1.1/",
        "https://[::1/",
        "https://[v1.x]/",
        "https://☃.net/",
        "https://example.com:443x/",
        "////example.com/",
        "https://xn--abc/",
        "https://example.com/" + "a" * 65536,
    ],
)
def test_it_refuses_what_httpx_cannot_read(url: str) -> None:
    with pytest.raises(DestinationRefused, match="not a valid URL"):
        check_url(url, allow_private=True)


def test_it_loads_no_http_client(tmp_path: Path) -> None:
    """Settings checked, URLs refused and accepted: httpx stays out of the process."""
    probe = (
        "import sys\n"
        "from worker.config import load_settings\n"
        "from worker.url_policy import DestinationRefused, check_url\n"
        "load_settings({'RELAY_SECRET_KEY': 'k' * 32, 'RELAY_DATA_DIR': sys.argv[1]})\n"
        "check_url('https://xn--mnchen-3ya.de/', allow_private=False, resolve_names=False)\n"
        "try:\n    check_url('https://127.1/', allow_private=False)\n"
        "except DestinationRefused:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
