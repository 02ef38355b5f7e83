"""What every platform client shares: turning transport failures and schema
errors into our two kinds of failure, with messages that never carry a body,
a token or an address."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from marshmallow import Schema, ValidationError, fields

from worker.errors import PermanentError, TransientError
from worker.platforms.identifiers import external_id

MESSAGE_LIMIT = 300


@contextmanager
def transport_errors(what: str) -> Iterator[None]:
    """Translate httpx's failures: a bad URL is ours to fix, the network's are transient."""
    try:
        yield
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentError(f"{what}: unusable URL ({type(exc).__name__})") from exc
    except httpx.TimeoutException as exc:
        raise TransientError(f"{what} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"{what} failed ({type(exc).__name__})") from exc


def body_kind(response: httpx.Response) -> str:
    """``non-JSON text/html body``: what came instead of JSON, never the body itself."""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    return f"non-JSON {kind[:60]} body"


def error_detail(response: httpx.Response, summary: Callable[[Any], str]) -> str:
    """The platform's summary of a JSON error body, else what kind of body came."""
    try:
        return summary(response.json())
    except ValueError:
        return body_kind(response)


def json_body(response: httpx.Response, what: str) -> Any:
    """The parsed body; one that is not JSON is a ``PermanentError`` naming ``what``."""
    try:
        return response.json()
    except ValueError:
        raise PermanentError(
            f"{what} is not JSON ({body_kind(response)}, HTTP {response.status_code})"
        ) from None


def load_document(schema: Schema, document: Any, what: str) -> Any:
    """``schema.load`` or ``PermanentError("<what> is malformed: <paths>")``."""
    if not isinstance(document, Mapping):
        raise PermanentError(f"{what} is malformed: not a JSON object")
    try:
        return schema.load(document)
    except ValidationError as exc:
        raise PermanentError(f"{what} is malformed: {describe(exc)}") from None


def describe(error: ValidationError) -> str:
    """``data.3.points: Not a valid number.; …`` — paths and messages, no input values."""
    problems = list(_flatten(error.messages))
    text = "; ".join(problems[:3])
    if len(problems) > 3:
        text += f" (+{len(problems) - 3} more)"
    return truncate(text)


def _flatten(messages: Any, path: str = "") -> Iterator[str]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from _flatten(value, f"{path}.{key}" if path else str(key))
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, path)
    else:
        yield f"{path}: {messages}"


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ExternalId(fields.Field[str | None]):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        return external_id(value)


class LooseText(fields.Field[str | None]):
    """Free text that may arrive as a number."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValidationError("Not a valid string.")
