"""Next and previous links over keyset pages (``worker.ops.pages``).

A keyset page knows only the cursor of the page after it; going back needs the
cursors the operator came through. They travel in the link itself (``trail``,
the last ``MAX_TRAIL`` of them), so paging back costs the same one index range
as paging forward, and the server keeps no state.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

MAX_TRAIL = 30
FIRST_PAGE = "-"  # a trail entry for the first page (which has no cursor)


@dataclass(frozen=True)
class Links:
    """Query arguments (filters included) for the next and previous page; None where
    there is none."""

    next: dict[str, str] | None
    previous: dict[str, str] | None


def current_cursor() -> str | None:
    return request.args.get("after") or None


def links(next_cursor: str | None, filters: dict[str, str]) -> Links:
    """Links to the pages around this one, keeping ``filters``."""
    trail = [part for part in request.args.get("trail", "").split(",") if part]
    here = current_cursor()
    forward = None
    if next_cursor:
        forward = filters | {
            "after": next_cursor,
            "trail": ",".join([*trail, here or FIRST_PAGE][-MAX_TRAIL:]),
        }
    back = None
    if here:
        before = trail[-1] if trail else FIRST_PAGE
        back = filters | {"trail": ",".join(trail[:-1])}
        if before != FIRST_PAGE:
            back["after"] = before
    return Links(forward, back)
