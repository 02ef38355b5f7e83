from __future__ import annotations

import io
import json
import logging

import pytest

from worker.logs import JsonFormatter, RelayHandler, ScrubFilter, configure_logging, scrub


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


def test_it_installs_one_handler_and_scrubs_for_every_other_one() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    stream = io.StringIO()
    foreign = logging.StreamHandler(stream)  # a library's basicConfig, say
    root.addHandler(foreign)
    try:
        configure_logging("INFO")
        configure_logging("INFO")
        assert sum(isinstance(handler, RelayHandler) for handler in root.handlers) == 1
        logging.getLogger("third.party").warning("login for %s", "ali@example.com")
        assert "ali@example.com" not in stream.getvalue() and "[email]" in stream.getvalue()
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])


def test_it_formats_json_lines() -> None:
    record = logging.LogRecord("relay", logging.ERROR, "f", 1, "for %s", ("ali@example.com",), None)
    ScrubFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "for [email]" and line["level"] == "ERROR"
