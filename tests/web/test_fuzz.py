"""Hostile input against the receiver as production serves it (gunicorn, gevent,
PostgreSQL, Redis), over raw loopback sockets: broken HTTP framing, absurd
headers and paths, and correctly signed bodies full of huge integers, deep
nesting and unstorable characters. No answer may be a 5xx, no traceback may
reach the log, and every stored event must then be processed without an error.

The cases are generated from a fixed seed, so a failure names a reproducible case.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import SALLA_SECRET
from tests.factories import CUSTOMER, MERCHANT, add_salla_store
from tests.web.conftest import Served
from tests.web.raw_http import chunked, exchange, request, signed_salla
from worker.pipeline import inbox
from worker.platforms import build_platforms
from worker.runtime import Runtime

SEED = 10
LIMIT = 256 * 1024
Case = tuple[str, bytes]  # (what it is, the bytes sent)


def envelope(rng: random.Random) -> dict[str, object]:
    event = rng.choice(["order.created", "customer.updated", "app.store.authorize", "x" * 300])
    return {
        "event": event,
        "merchant": int(MERCHANT),
        "created_at": "Sun Jun 26 2022 12:21:48 GMT+0300",
        "data": {"id": 1, "customer": {"id": int(CUSTOMER)}},
    }


def huge_integer(rng: random.Random) -> int:
    digits = rng.choice([255, 256, 300, 1000, 4300])
    return rng.choice([1, -1]) * int("9" * digits)


def nested(depth: int, rng: random.Random) -> str:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + "1" + closer * depth


def _mutations(rng: random.Random) -> dict[str, Callable[[dict[str, object]], None]]:
    """Each hostile change of a Salla envelope, by name."""
    return {
        "merchant": lambda d: d.update(merchant=huge_integer(rng)),
        "customer": lambda d: d.update(
            data={"id": huge_integer(rng), "customer": {"id": huge_integer(rng)}}
        ),
        "number": lambda d: d.update(merchant=rng.choice([1e308, -0.0, 1.5, True, None, [], {}])),
        "characters": lambda d: d.update(
            event=rng.choice(["order.created\u0000", "\ud800", "\u202e", "é" * 200])
        ),
        "shape": lambda d: d.update(data=rng.choice([[], "text", 12, None, [{"id": 1}] * 50])),
        "event": lambda d: d.update(event=rng.choice([None, 5, [], {"a": 1}, ""])),
        "size": lambda d: d.update(
            data={"blob": "x" * rng.choice([LIMIT - 200, LIMIT, LIMIT + 1])}
        ),
        "nested": lambda d: None,  # spliced into the text below
    }


def hostile_body(rng: random.Random) -> tuple[str, bytes]:
    """A JSON-ish body with one hostile part; signed as Salla signs."""
    document, mutations = envelope(rng), _mutations(rng)
    kind = rng.choice(sorted(mutations))
    mutations[kind](document)
    text = json.dumps(document, ensure_ascii=rng.random() < 0.5)
    if kind == "nested":
        depth = rng.choice([10, 500, 5000, 60000])
        text = text[:-1] + f', "deep": {nested(depth, rng)}}}'
    if rng.random() < 0.1:
        text = text.replace("1", "1e99999", 1)  # infinity as a literal
    if rng.random() < 0.05:
        text = "NaN"
    return kind, text.encode("utf-8", "surrogatepass")


def signed_case(rng: random.Random) -> Case:
    kind, body = hostile_body(rng)
    headers = signed_salla(body, SALLA_SECRET)
    if rng.random() < 0.3:
        return f"signed {kind}, chunked", request(
            "/webhooks/salla",
            {"Transfer-Encoding": "chunked", **headers},
            chunked(body, rng.choice([1, 7, 4096, 65536])),
        )
    return f"signed {kind}", request(
        "/webhooks/salla", {"Content-Length": str(len(body)), **headers}, body
    )


BAD_SIZES = [b"zz", b"-1", b"0x10", b"+5", b" 5", b"5 ", b"", b"\x00", b"1_0", b"\xff", b"5;"]


def framing_case(rng: random.Random) -> Case:
    body = b'{"event": "order.created", "merchant": 1234509876}'
    size = b"%x" % len(body)
    variants: dict[str, Callable[[], bytes]] = {
        "bad size": lambda: rng.choice(BAD_SIZES) + b"\r\n" + body + b"\r\n0\r\n\r\n",
        "extension": lambda: size + b";" + rng.randbytes(8) + b"\r\n" + body + b"\r\n0\r\n\r\n",
        "no crlf": lambda: size + b"\r\n" + body + b"0\r\n\r\n",
        "short chunk": lambda: b"%x\r\n" % (len(body) + 3) + body + b"\r\n0\r\n\r\n" + b"abc",
        "bad trailer": lambda: (
            size + b"\r\n" + body + b"\r\n0\r\n" + rng.randbytes(6) + b"\r\n\r\n"
        ),
        "over limit": lambda: chunked(b"x" * (LIMIT + rng.randint(1, 5000)), 65536),
        "random": lambda: rng.randbytes(rng.randint(1, 200)) + b"\r\n0\r\n\r\n",
    }
    name = rng.choice(sorted(variants))
    encoding = rng.choice(["chunked", "chunked", "gzip, chunked", "chunked, chunked", "Chunked"])
    headers = {"Transfer-Encoding": encoding}
    if rng.random() < 0.2:
        headers["Content-Length"] = str(rng.randint(0, 100))
    return f"chunked {name}", request("/webhooks/salla", headers, variants[name]())


def header_case(rng: random.Random) -> Case:
    body = b'{"event": "order.created"}'
    choices: dict[str, Callable[[], bytes]] = {
        "content-length": lambda: request(
            "/webhooks/salla",
            {"Content-Length": rng.choice(["-1", "abc", "1e3", "+2", str(10**30), "2, 2"])},
            body,
        ),
        "two lengths": lambda: request(
            "/webhooks/salla", {"Content-Length": "26", "content-length": "5"}, body
        ),
        "long header": lambda: request(
            "/webhooks/salla", {"X-Salla-Signature": "a" * rng.choice([100, 9000, 70000])}, body
        ),
        "binary header": lambda: request(
            "/webhooks/salla", {"X-Salla-Signature": rng.randbytes(16).hex()[:-1] + "\x00"}, body
        ),
        "strategy": lambda: request(
            "/webhooks/salla",
            {
                "Content-Length": str(len(body)),
                "X-Salla-Security-Strategy": rng.choice(["Token", "token ", "\u00e9", "x" * 999]),
                "Authorization": rng.choice(["Bearer", "Bearer  ", "Basic ===", "é"]),
            },
            body,
        ),
        "shopify": lambda: request(
            "/webhooks/shopify",
            {
                "Content-Length": str(len(body)),
                "X-Shopify-Hmac-Sha256": rng.choice(["", "====", "é", "A" * 44]),
                "X-Shopify-Shop-Domain": rng.choice(["", "x" * 300, "a.myshopify.com\x01"]),
                "X-Shopify-Topic": rng.choice(["orders/create", "../..", "x" * 200]),
            },
            body,
        ),
    }
    name = rng.choice(sorted(choices))
    return f"header {name}", choices[name]()


def path_case(rng: random.Random) -> Case:
    path = rng.choice(
        [
            "//webhooks/salla",
            "/webhooks//salla",
            "/webhooks/salla/",
            "/webhooks/zid/" + "9" * 300 + "/order.create",
            "/webhooks/zid/1/" + "%00" * 3,
            "/webhooks/appstle/" + "a" * 500 + ".myshopify.com",
            "/webhooks/%2e%2e/salla",
            "/webhooks/" + "x" * 5000,
            "/webhooks/salla?" + "a=1&" * 500,
            "/webhooks/é",
        ]
    )
    method = rng.choice(["POST", "POST", "GET", "PUT", "OPTIONS", "BREW"])
    raw = request(path, {"Content-Length": "2"}, b"{}").replace(b"POST", method.encode(), 1)
    return f"path {method}", raw


def garbage_case(rng: random.Random) -> Case:
    choices = [
        rng.randbytes(rng.randint(1, 300)),
        b"POST /webhooks/salla HTTP/9.9\r\n\r\n",
        b"POST /webhooks/salla\r\n\r\n",
        b"POST /webhooks/salla HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n",
        b"POST /webhooks/salla HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST /webhooks/salla HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GARBAGE / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\n",
    ]
    return "garbage", rng.choice(choices)


GENERATORS = [signed_case] * 5 + [framing_case] * 4 + [header_case] * 2 + [path_case, garbage_case]


def cases(count: int) -> Iterator[Case]:
    rng = random.Random(SEED)
    for _ in range(count):
        yield rng.choice(GENERATORS)(rng)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_no_hostile_request_gets_a_5xx_or_a_traceback(
    serve_gunicorn: Callable[..., Served], runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    add_salla_store(runtime)
    url, log = serve_gunicorn(RELAY_BODY_TIMEOUT_SECONDS="1")
    generated = list(cases(2400))

    def send(case: Case) -> tuple[str, int | None]:
        return case[0], exchange(url, case[1], timeout=10)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, generated))
    server_errors = [(kind, status) for kind, status in answers if status and status >= 500]
    assert server_errors == []
    assert "Traceback" not in log.read_text()
    processed = process_every_stored_event(runtime)
    with capsys.disabled():
        figures = Counter(status for _, status in answers)
        sys.stdout.write(
            f"\n{len(answers)} hostile requests: answers {dict(sorted(figures.items(), key=str))}"
            f"; {processed} stored events processed without an error\n"
        )


def process_every_stored_event(runtime: Runtime) -> int:
    """The worker's side of what got in: plans on hostile bodies must not raise."""
    platforms, processed = build_platforms(runtime.settings), 0
    while claimed := inbox.claim_pending(runtime, 200):
        for inbox_id in claimed:
            inbox.process(runtime, platforms, inbox_id)
            processed += 1
    return processed
