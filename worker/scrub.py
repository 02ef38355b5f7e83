"""Error text fit to store and show: what a sink or platform answered, masked.

An answer is written to a row (``delivery_attempts.error``, a sink's pause reason)
that ops read in the CLI and on pages, and receivers quote what they were sent:
an address, a phone number, the URL they were called on with its token. So every
error text is masked before it is written, not when it is shown. This adds to
the log filter's patterns (``worker.logs.scrub``: addresses, phones, bearer
tokens, ``key=value`` secrets) what error texts carry besides: query strings,
API keys in their vendors' shapes, long random strings and long numbers.
"""

from __future__ import annotations

import re

from worker.logs import scrub

ERROR_LIMIT = 500

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Any URL's query values: tokens and signatures travel there (``?token=…&sig=…``).
    (re.compile(r"([?&][^=&\s#\"']{1,40}=)[^&\s#\"']+"), r"\1[secret]"),
    # Vendors' key shapes: Stripe-like sk_/pk_, HubSpot private app tokens (pat-na1-…).
    (re.compile(r"\b(?:sk|pk|rk)_(?:live_|test_)?[A-Za-z0-9]{12,}"), "[secret]"),
    (re.compile(r"\bpat-[a-z]{2,4}\d?-[0-9a-fA-F-]{16,}"), "[secret]"),
    (re.compile(r"(?i)\b(token|signature|sig|key)(\s*[:=]\s*)[^\s\"',&}]+"), r"\1\2[secret]"),
    # A long run of letters and digits is a token more often than a word.
    (re.compile(r"\b(?=[A-Za-z_\-]*\d)(?=[\d_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}\b"), "[secret]"),
    # Phone numbers in any spelling the log filter does not know (9+ digits).
    (re.compile(r"(?<![\w.])\+?\d(?:[ \-]?\d){8,}(?![\w.])"), "[number]"),
)


def scrub_error(text: str | None, limit: int = ERROR_LIMIT) -> str | None:
    """``text`` with secrets and personal data masked, at most ``limit`` characters;
    None for no text."""
    if not text:
        return None
    text = scrub(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text[:limit]
