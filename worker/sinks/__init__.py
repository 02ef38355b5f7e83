"""Where changes go: one module per sink kind, found by the name stored on a sink row."""

from __future__ import annotations

from marshmallow import validate

from worker.sinks.base import Sink
from worker.sinks.email import EmailSink
from worker.sinks.hubspot import HubSpotSink
from worker.sinks.klaviyo import KlaviyoSink
from worker.sinks.webhook import WebhookSink

SINKS: dict[str, type[Sink]] = {
    sink.kind: sink for sink in (WebhookSink, HubSpotSink, KlaviyoSink, EmailSink)
}


class UnknownSinkKind(KeyError):
    """A sink row or CLI argument names a kind this version does not have."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument, quotes and all.
        return str(self.args[0]) if self.args else "unknown sink kind"


def get_sink(kind: str) -> type[Sink]:
    try:
        return SINKS[kind]
    except KeyError:
        known = ", ".join(sorted(SINKS))
        raise UnknownSinkKind(f"unknown sink kind {kind!r} (known: {known})") from None


def warm() -> None:
    """Compile what the sinks' config schemas would compile on their first use.

    marshmallow builds its URL pattern on the first ``fields.Url`` check, about 40 ms
    of CPU. The worker's main process calls this before it forks its pool
    (``worker.celery_app``), so every pool process and thread starts with it made
    instead of each making its own.
    """
    validate.URL(relative=False, require_tld=False)("https://example.com/")
