"""Reading the database as an auditor would: every row of every table, as text."""

from __future__ import annotations

import json
import re
from typing import Any

from worker.runtime import Runtime
from worker.storage.models import Base


def every_table(runtime: Runtime) -> dict[str, str]:
    """Each table's rows as one text (bytes read as latin-1, JSON as written)."""
    tables = {}
    with runtime.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(table.select()).all()
            tables[table.name] = "\n".join(_text(value) for row in rows for value in row)
    return tables


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# A Fernet token (what ``worker.crypto`` seals with): version byte 0x80, base64url.
SEALED = re.compile(r"gAAAAA[A-Za-z0-9_=-]+")


def found_in_clear(runtime: Runtime, *needles: str) -> list[tuple[str, str]]:
    """(table, needle) for every needle some row of that table holds, case-insensitively,
    outside sealed values: a needle of four letters turns up by chance in base64 text
    (one run in a few thousand here), which is no leak."""
    return [
        (table, needle)
        for table, text in every_table(runtime).items()
        for needle in needles
        if needle.lower() in unsealed(text).lower()
    ]


def unsealed(text: str) -> str:
    """``text`` with every Fernet token taken out."""
    return SEALED.sub("<sealed>", text)
