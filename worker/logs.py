"""Logging with a last line of defence: records are scrubbed of emails, phone
numbers and credentials before any handler sees them.

The code never logs bodies or credentials on purpose; this filter catches what
slips through an exception message or a third-party library.
"""

from __future__ import annotations

import json
import logging
import re
import sys

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
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``RELAY_LOG_FORMAT=json``), for log shippers that parse."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "process": record.processName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


class RelayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler every process logs through (web, worker, beat, CLI).

    It writes to the real standard error (``sys.__stderr__``), never to whatever
    ``sys.stderr`` is at the time: Celery replaces that with a proxy that logs
    each line again at WARNING, which printed every worker line twice.
    """

    def __init__(self, fmt: str) -> None:
        super().__init__(sys.__stderr__)
        self.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        self.addFilter(ScrubFilter())


def configure_logging(level: str | int = "INFO", fmt: str = "text") -> None:
    """Install the scrubbing handler on the root logger, once per process.

    A handler someone else put on the root logger (a library's ``basicConfig``,
    a test runner's capture) gets the scrubbing filter too: no record reaches a
    handler that does not scrub it.
    """
    root = logging.getLogger()
    if not any(isinstance(handler, RelayHandler) for handler in root.handlers):
        root.addHandler(RelayHandler(fmt))
    for handler in root.handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
    root.setLevel(level)
