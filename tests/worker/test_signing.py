"""Our Standard Webhooks signer and verifier, checked against the reference package."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from worker.errors import Unauthorized
from worker.signing import (
    InvalidSecret,
    SignatureError,
    decode_secret,
    new_secret,
    sign,
    verify,
)

BODY = '{"type":"points.balance_changed","data":{"name":"نورة"}}'.encode()
MSG_ID = "msg_2mJ0rQ7dNnXhH5l6"
Headers = dict[str, str]


def signed_headers(secret: str, *, timestamp: int | None = None, body: bytes = BODY) -> Headers:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, MSG_ID, timestamp, body),
    }


@pytest.fixture
def secret() -> str:
    return new_secret()


def test_it_matches_the_published_example() -> None:
    # The example from the Svix / Standard Webhooks documentation.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_it_signs_what_the_reference_package_verifies(secret: str) -> None:
    Webhook(secret).verify(BODY, signed_headers(secret))


def test_it_verifies_what_the_reference_package_signs(secret: str) -> None:
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(MSG_ID, now, BODY.decode())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    verify(secret, headers, BODY)


def test_it_signs_once_per_rotated_secret() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers(f"{old} {new}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_it_accepts_any_of_the_receivers_rotated_secrets(secret: str) -> None:
    headers = signed_headers(secret)
    verify([new_secret(), secret], headers, BODY)
    verify(f"{new_secret()} {secret}", headers, BODY)


def test_it_skips_signatures_of_unknown_versions(secret: str) -> None:
    headers = signed_headers(secret)
    headers["webhook-signature"] = "v2,Zm9v v1,!!! " + headers["webhook-signature"]
    verify(secret, headers, BODY)


def test_it_reads_header_names_case_insensitively(secret: str) -> None:
    headers = {name.title(): value for name, value in signed_headers(secret).items()}
    verify(secret, headers, BODY)


def test_it_takes_other_header_names_for_svix_senders(secret: str) -> None:
    headers = {name.replace("webhook-", "svix-"): v for name, v in signed_headers(secret).items()}
    verify(
        secret,
        headers,
        BODY,
        id_header="svix-id",
        timestamp_header="svix-timestamp",
        signature_header="svix-signature",
    )


def test_it_accepts_secrets_without_prefix_or_padding() -> None:
    key = b"0123456789abcdefghijklmnopq"  # 27 bytes: base64 needs one "=" of padding
    encoded = base64.b64encode(key).decode()
    assert decode_secret(encoded.rstrip("=")) == key
    assert decode_secret("whsec_" + encoded) == key


@pytest.mark.parametrize("secret", ["whsec_", "whsec_!!!!", "whsec_abc def", "whsec_نورة"])
def test_it_reports_a_malformed_secret_as_configuration_not_as_a_bad_request(secret: str) -> None:
    with pytest.raises(InvalidSecret) as caught:
        decode_secret(secret)
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, SignatureError)


def test_it_makes_secrets_of_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(decode_secret(first)) == 32


def test_it_raises_an_unauthorized_error_receivers_answer_401() -> None:
    assert issubclass(SignatureError, Unauthorized)


def _without(name: str) -> Callable[[Headers], Headers]:
    return lambda headers: {k: v for k, v in headers.items() if k != name}


def _setting(name: str, value: str) -> Callable[[Headers], Headers]:
    return lambda headers: headers | {name: value}


def _resigned_in(seconds: int) -> Callable[[Headers], Headers]:
    def resign(headers: Headers) -> Headers:
        return headers | signed_headers(SECRET_OF_TEST, timestamp=int(time.time()) + seconds)

    return resign


def _timestamp(change: Callable[[str], str]) -> Callable[[Headers], Headers]:
    return lambda h: h | {"webhook-timestamp": change(h["webhook-timestamp"])}


def _signature(change: Callable[[str], str]) -> Callable[[Headers], Headers]:
    return lambda h: h | {"webhook-signature": change(h["webhook-signature"])}


SECRET_OF_TEST = new_secret()
MALFORMED: dict[str, Callable[[Headers], Headers]] = {
    "missing id": _without("webhook-id"),
    "missing timestamp": _without("webhook-timestamp"),
    "missing signature": _without("webhook-signature"),
    "empty id": _setting("webhook-id", ""),
    "empty timestamp": _setting("webhook-timestamp", ""),
    "empty signature": _setting("webhook-signature", ""),
    "blank signature": _setting("webhook-signature", "   "),
    "timestamp not a number": _setting("webhook-timestamp", "yesterday"),
    "timestamp with a fraction": _timestamp(lambda t: t + ".5"),
    "timestamp with a sign": _timestamp(lambda t: "+" + t),
    "timestamp with spaces inside": _timestamp(lambda t: t[:4] + " " + t[4:]),
    "timestamp in milliseconds": _timestamp(lambda t: t + "000"),
    "timestamp with underscores": _setting("webhook-timestamp", "1_700_000_000"),
    "timestamp in arabic digits": _setting("webhook-timestamp", "١٧٠٠٠٠٠٠٠٠"),
    "timestamp of 5000 digits": _setting("webhook-timestamp", "9" * 5000),
    "timestamp too old": _resigned_in(-361),
    "timestamp too new": _resigned_in(+361),
    "signature without v1": _signature(lambda s: s.removeprefix("v1,")),
    "signature with another version": _signature(lambda s: "v2" + s[2:]),
    "signature not base64": _setting("webhook-signature", "v1,not base64!"),
    "signature of non-ascii": _setting("webhook-signature", "v1,نورة"),
    "signature without comma": _setting("webhook-signature", "v1"),
    "signature with too many commas": _setting("webhook-signature", "v1,,,"),
    "signature truncated": _signature(lambda s: s[:-6]),
    "signature of the wrong length": _signature(lambda s: s[:-4] + "AAAAAAAA"),
    "signature by another secret": lambda h: h | signed_headers(new_secret()),
    "id changed after signing": _setting("webhook-id", "msg_other"),
    "timestamp changed after signing": _timestamp(lambda t: str(int(t) - 1)),
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_it_raises_signature_error_for_every_bad_header(
    mutate: Callable[[Headers], Headers],
) -> None:
    headers = mutate(signed_headers(SECRET_OF_TEST))
    with pytest.raises(SignatureError):
        verify(SECRET_OF_TEST, headers, BODY)


def test_it_rejects_a_body_changed_after_signing() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(SECRET_OF_TEST, signed_headers(SECRET_OF_TEST), BODY + b" ")


def test_it_rejects_the_old_secret_once_the_receiver_has_rotated_it_away() -> None:
    old, new = new_secret(), new_secret()
    with pytest.raises(SignatureError):
        verify(new, signed_headers(old), BODY)


def test_it_rejects_when_the_receiver_has_no_secret() -> None:
    with pytest.raises(SignatureError):
        verify([], signed_headers(SECRET_OF_TEST), BODY)


def test_it_honours_a_tighter_tolerance() -> None:
    headers = signed_headers(SECRET_OF_TEST, timestamp=int(time.time()) - 120)
    verify(SECRET_OF_TEST, headers, BODY)
    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET_OF_TEST, headers, BODY, tolerance=60)
