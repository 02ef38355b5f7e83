"""Logging with a last line of defence: records are scrubbed of emails, phone
numbers and credentials before any handler sees them.

The code never logs bodies or credentials on purpose; this filter catches what
slips through an exception message or a third-party library.
"""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?<![\w])\+\d[\d \-]{7,16}\d"), "[phone]"),
    (re.compile(r"\b(?:05\d{8}|9665\d{8}|009665\d{8})\b"), "[phone]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w\-.~+/=]{6,}"), r"\1 [secret]"),
    (re.compile(r"whsec_[\w+/=]+"), "whsec_[secret]"),
    (
        re.compile(
            r"(?i)([\"']?(?:access_token|refresh_token|client_secret|password|secret|"
            r"authorization|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"
        ),
        r"\1[secret]",
    ),
)


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = scrub(message), None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, ScrubFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
        )
        handler.addFilter(ScrubFilter())
        root.addHandler(handler)
    root.setLevel(level)
