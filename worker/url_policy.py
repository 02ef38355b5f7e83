"""The outbound URL policy, without an HTTP client: which URLs and addresses we call.

Outbound requests go to ``https`` URLs on globally routable addresses only —
never loopback, private, link-local (``169.254.169.254`` is the cloud metadata
service), multicast, unspecified or reserved ones. ``check_url`` applies it
when a URL is configured (settings, the command line); ``worker.http`` applies
it again on every connection its clients open, with ``resolve`` and
``check_addresses`` from here. ``RELAY_ALLOW_PRIVATE_URLS=1`` lifts the policy
for local development, the sandboxes and the tests.

This module imports no HTTP client, so that reading the settings (the web
process does, and never calls out) costs none. ``check_url`` reads a URL as
httpx, the client that will call it, reads it: the split is RFC 3986's
(Appendix B, the expression httpx's ``_urlparse`` uses), then the same checks
of the host, the port and the path, and the host normalised alike (lowercased,
percent-encoded with ``urllib.parse.quote``, IDNA hosts through the ``idna``
package httpx uses, imported only for them). ``tests/worker/test_url_policy.py``
compares the verdicts with httpx's own reading of the same URLs.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote

from worker.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPV4_SPELLING = re.compile(r"[0-9a-fA-FxX.]+")  # 0x7f000001, 2130706433, 0177.0.0.1, 127.1

# How httpx splits a URL (httpx/_urlparse.py, RFC 3986 Appendix B): every part optional.
MAX_URL_LENGTH = 65536
_URL = re.compile(
    r"(?:(?P<scheme>(?:[a-zA-Z][a-zA-Z0-9+.-]*)?):)?"  # ":x" has an empty scheme
    r"(?://(?P<authority>[^/?#]*))?"
    r"(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?"
)
_AUTHORITY = re.compile(r"(?:(?P<userinfo>.*)@)?(?P<host>\[.*\]|[^:@]*):?(?P<port>.*)?")
_IPV4_STYLE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
_IPV6_STYLE = re.compile(r"^\[.*\]$")
_HOST_SAFE = "!$&'()*+,;=" + '"`{}%|\\'  # RFC 3986 sub-delims and what WHATWG leaves in hosts
_DEFAULT_PORTS = {"ftp": 21, "http": 80, "https": 443, "ws": 80, "wss": 443}


class DestinationRefused(PermanentError):
    """An outbound URL, or an address its name resolves to, is outside the policy.

    Permanent: retrying cannot make ``10.0.0.5`` public. The message names the
    host and why, never a path or query (which may carry a token)."""


class InvalidURL(ValueError):
    """Not a URL httpx would send a request to."""


class Destination(NamedTuple):
    """What the policy reads of a URL: its scheme, host and port as httpx sees them
    (lowercased; an IPv6 host without brackets; ``None`` for the scheme's default
    port when the scheme is spelled in lower case, as httpx compares it)."""

    scheme: str
    encoded_host: str  # IDNA- and percent-encoded: what a request would carry
    port: int | None

    @property
    def host(self) -> str:
        """``httpx.URL.host``: an ``xn--`` host in Unicode. Decoded when read, as
        httpx does; a host that does not decode is ``InvalidURL`` here (httpx lets
        idna's error through)."""
        if not self.encoded_host.startswith("xn--"):
            return self.encoded_host
        import idna

        try:
            decoded: str = idna.decode(self.encoded_host)
        except (idna.IDNAError, UnicodeError):
            raise InvalidURL("an undecodable IDNA host") from None
        return decoded


def check_url(url: str, *, allow_private: bool, resolve_names: bool = True) -> str:
    """``url`` if it obeys the policy, else ``DestinationRefused`` saying why.

    A name that does not resolve now is accepted: DNS may not be set up yet,
    and every connection is checked again anyway. ``resolve_names=False``
    (settings read at start-up) checks the scheme and address literals only."""
    try:
        parsed = destination(url)
        schemes = ("https", "http") if allow_private else ("https",)
        host = parsed.host if parsed.scheme in schemes else ""  # a wrong scheme is told first
    except InvalidURL:
        raise DestinationRefused("not a valid URL") from None
    if parsed.scheme not in schemes or not host:
        raise DestinationRefused(
            f"only https:// URLs are allowed, got {parsed.scheme or 'no'} scheme"
            + ("" if allow_private else " (RELAY_ALLOW_PRIVATE_URLS=1 allows http locally)")
        )
    if allow_private or not (resolve_names or ip_literal(host)):
        return url
    try:
        addresses = resolve(host, parsed.port or 443)
    except socket.gaierror:
        return url
    check_addresses(host, addresses)
    return url


def destination(url: str) -> Destination:
    """The scheme, host and port of ``url`` as ``httpx.URL(url)`` reads them, or
    ``InvalidURL`` where httpx raises its own."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL("URL too long")
    if any(char.isascii() and not char.isprintable() for char in url):
        raise InvalidURL("a control character")
    parts = _URL.match(url)
    assert parts is not None  # every part is optional: the expression always matches
    scheme = (parts["scheme"] or "").lower()
    authority = _AUTHORITY.match(parts["authority"] or "")
    assert authority is not None
    host = _encode_host(authority["host"] or "")
    port = _port(authority["port"], parts["scheme"] or "")  # the default as spelled: not HTTPS's
    has_authority = bool(authority["userinfo"] or host) or port is not None
    _check_path(parts["path"] or "", bool(scheme), has_authority)
    return Destination(scheme, host, port)


def _encode_host(host: str) -> str:
    if not host:
        return ""
    if _IPV4_STYLE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ipaddress.AddressValueError:
            raise InvalidURL("an invalid IPv4 address") from None
        return host
    if _IPV6_STYLE.match(host):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ipaddress.AddressValueError:
            raise InvalidURL("an invalid IPv6 address") from None
        return host[1:-1]
    if host.isascii():
        return quote(host.lower(), safe=_HOST_SAFE)
    import idna  # httpx's IDNA; loaded only for a host that needs it

    try:
        return idna.encode(host.lower()).decode("ascii")
    except idna.IDNAError:
        raise InvalidURL("an invalid IDNA host") from None


def _port(port: str | None, scheme: str) -> int | None:
    if port is None or port == "":
        return None
    try:
        number = int(port)  # as httpx does: " 8443", "+8443" and "-1" are numbers too
    except ValueError:
        raise InvalidURL("an invalid port") from None
    return None if number == _DEFAULT_PORTS.get(scheme) else number


def _check_path(path: str, has_scheme: bool, has_authority: bool) -> None:
    if has_authority and path and not path.startswith("/"):
        raise InvalidURL("a path after the host that does not begin with /")
    if not has_scheme and not has_authority and path.startswith(("//", ":")):
        raise InvalidURL("a relative URL beginning with // or :")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` stands for: a literal in any spelling, or DNS's answer."""
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0]) for answer in answers]


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address, including the old IPv4 spellings resolvers accept
    (``0x7f000001``, ``2130706433``, ``127.1``)."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if not _IPV4_SPELLING.fullmatch(bare):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def check_addresses(host: str, addresses: Iterable[IPAddress]) -> None:
    """Refuse the host if any of its addresses is outside the policy (a name that
    mixes public and private answers is not a public endpoint)."""
    for address in addresses:
        reason = refusal(address)
        if reason:
            raise DestinationRefused(f"{host} resolves to a {reason} address ({address})")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a destination we call, or ``None`` for a public one."""
    address = _embedded_ipv4(address)
    for reason, matches in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if matches:
            return reason
    return None


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside ``::ffff:a.b.c.d``, 6to4 and Teredo forms."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if inner is not None:
            return inner
    return address
