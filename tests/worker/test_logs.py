from __future__ import annotations

import logging

import pytest

from worker.logs import ScrubFilter, scrub


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("customer sara.k@example.com failed", "sara.k@example.com"),
        ("call +966 512 345 678 now", "512 345 678"),
        ("mobile 0512345678", "0512345678"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ('{"access_token": "tok_123456"}', "tok_123456"),
        ("refresh_token=r-987654&x=1", "r-987654"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ],
)
def test_it_scrubs_personal_data_and_secrets(text: str, leak: str) -> None:
    assert leak not in scrub(text)


def test_it_keeps_ids_readable() -> None:
    assert scrub("store salla:1234509876 customer 1257881496") == (
        "store salla:1234509876 customer 1257881496"
    )


def test_it_scrubs_records_and_their_tracebacks() -> None:
    try:
        raise ValueError("bad token for ali@example.com")
    except ValueError as exc:
        record = logging.LogRecord(
            "t",
            logging.ERROR,
            "f",
            1,
            "user %s",
            ("ali@example.com",),
            (type(exc), exc, exc.__traceback__),
        )
    ScrubFilter().filter(record)
    assert "ali@example.com" not in record.getMessage()
    assert record.exc_text and "ali@example.com" not in record.exc_text
