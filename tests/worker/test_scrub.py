"""Error text is masked before it is stored: addresses, phones, tokens, keys, query strings."""

from __future__ import annotations

import pytest

from worker.scrub import ERROR_LIMIT, scrub_error


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("550 mailbox sara.q+loyalty@example.com.sa unavailable", "sara.q+loyalty@example.com.sa"),
        ("customer +966 50 123 4567 not found", "123 4567"),
        ("customer 0501234567 not found", "0501234567"),
        ("customer 00447911123456 not found", "00447911123456"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("401 for api_key=pk_4f3c2b1a0e9d8c7b6a5f4e3d", "pk_4f3c2b1a0e9d8c7b6a5f4e3d"),
        ("token pat-na1-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b expired", "0f1e2d3c-4b5a"),
        ("POST https://hooks.example.com/in?token=s3cr3tvalue&sig=abc failed", "s3cr3tvalue"),
        ("POST https://hooks.example.com/in?token=s3cr3tvalue&sig=abc9 failed", "abc9"),
        ("signing key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc", "9f8e7d6c5b4a3928"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rejected", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ],
)
def test_it_masks_personal_data_and_secrets(text: str, secret: str) -> None:
    masked = scrub_error(text)
    assert masked is not None and secret not in masked


def test_it_keeps_what_ops_need_to_read() -> None:
    for text in (
        "endpoint answered 503 Service Unavailable",
        "gave up after 10 attempts: could not reach endpoint (ConnectError)",
        "delivery msg_0123456789abcdef01234567 refused",
        "RCPT: SMTP server answered 550 5.1.1 user unknown",
    ):
        assert scrub_error(text) == text


def test_it_bounds_the_text() -> None:
    assert scrub_error("x" * 2000) == "x" * ERROR_LIMIT
    assert scrub_error("") is None and scrub_error(None) is None
