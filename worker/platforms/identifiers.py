"""A platform's ids as we keep them, read by the receiver and the API clients alike.

Apart from ``worker.platforms.common`` (transport failures, schemas), so that
identifying a webhook loads neither an HTTP client nor marshmallow.
"""

from __future__ import annotations

from typing import Any

ID_LIMIT = 255  # the length of our external id columns
_ID_BOUND = 10**ID_LIMIT  # an integer of more digits than that is no id of ours


def external_id(value: Any) -> str | None:
    """Ids arrive as numbers or strings; we keep strings. Anything else is no id,
    control characters included (PostgreSQL text cannot even hold a NUL)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        # A signed body may hold an integer of hundreds of digits: no id of ours.
        text = str(value) if abs(value) < _ID_BOUND else ""
        return text if 0 < len(text) <= ID_LIMIT else None
    if isinstance(value, str) and len(value) <= ID_LIMIT and value.strip().isprintable():
        return value.strip() or None
    return None
