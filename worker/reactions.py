"""Per-sink reactions: which changes a sink wants, and when a message may go out.

Pure functions over a sink's ``rules`` (stored as JSON, validated by
``RulesSchema`` when set from the CLI):

- ``direction``: ``any`` | ``increase`` | ``decrease`` — applies to balance changes;
- ``min_change``: the smallest absolute change in available points worth a message;
- ``quiet_hours``: ``{"start": "22:00", "end": "08:00"}`` in the store's time zone —
  messages are held until the window ends (CRM updates are never held);
- ``collapse_seconds``: a message waits this long; a second change for the same
  customer in the meantime replaces it, so the customer hears once, about the
  latest state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from worker.points import BALANCE_CHANGED
from worker.sinks import SINKS

# Sinks that address a person (``Sink.at_most_once``): their messages wait and collapse.
MESSAGE_SINKS = frozenset(kind for kind, sink in SINKS.items() if sink.at_most_once)
DEFAULT_COLLAPSE_SECONDS = 60.0


class QuietHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    start = fields.Time(required=True, format="%H:%M")
    end = fields.Time(required=True, format="%H:%M")


class RulesSchema(Schema):
    class Meta:
        unknown = RAISE

    direction = fields.String(validate=validate.OneOf(["any", "increase", "decrease"]))
    min_change = fields.Decimal(validate=validate.Range(min=0), as_string=True)
    quiet_hours = fields.Nested(QuietHoursSchema)
    collapse_seconds = fields.Float(validate=validate.Range(min=0, max=86400))

    @validates_schema
    def _distinct_hours(self, data: dict[str, Any], **_: Any) -> None:
        hours = data.get("quiet_hours")
        if hours and hours["start"] == hours["end"]:
            raise ValidationError("quiet hours must start and end at different times")


def validate_rules(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rules as stored (JSON-ready); ``ValueError`` with a readable message for bad input."""
    try:
        loaded = RulesSchema().load(dict(raw))
    except ValidationError as exc:
        raise ValueError(_message(exc.messages)) from None
    dumped: dict[str, Any] = RulesSchema().dump(loaded)
    return dumped


def _message(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return "; ".join(_message(value, f"{prefix}{key}: ") for key, value in messages.items())
    if isinstance(messages, list):
        return prefix + ", ".join(str(item) for item in messages)
    return prefix + str(messages)


def wanted_kinds(
    sink_kind: str,
    rules: Mapping[str, Any],
    subscribed: list[str],
    kinds: list[str],
    payload: Mapping[str, Any],
) -> list[str]:
    """The kinds of this change the sink wants (empty: no delivery).

    The first snapshot of a customer (``first_seen``) is a baseline, not news:
    CRMs and webhooks get it (they should hold the values), people do not —
    otherwise the first reconciliation would tell every customer they "earned"
    their whole balance.
    """
    if sink_kind in MESSAGE_SINKS and payload.get("first_seen"):
        return []
    wanted = [kind for kind in kinds if kind in subscribed]
    if BALANCE_CHANGED in wanted and not _balance_passes(rules, payload):
        wanted.remove(BALANCE_CHANGED)
    return wanted


def _balance_passes(rules: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    before, after = payload.get("balance_before", 0), payload.get("balance_after", 0)
    delta = float(after) - float(before)
    direction = rules.get("direction", "any")
    if (direction == "increase" and delta <= 0) or (direction == "decrease" and delta >= 0):
        return False
    return abs(delta) >= float(rules.get("min_change", 0))


def send_at(rules: Mapping[str, Any], sink_kind: str, now: datetime, timezone: str) -> datetime:
    """When a new delivery may first go out."""
    if sink_kind not in MESSAGE_SINKS:
        return now
    ready = now + timedelta(seconds=collapse_seconds(rules, sink_kind))
    return after_quiet_hours(rules.get("quiet_hours"), ready, timezone)


def collapse_seconds(rules: Mapping[str, Any], sink_kind: str) -> float:
    if sink_kind not in MESSAGE_SINKS:
        return 0.0
    return float(rules.get("collapse_seconds", DEFAULT_COLLAPSE_SECONDS))


def after_quiet_hours(hours: Mapping[str, str] | None, moment: datetime, timezone: str) -> datetime:
    """``moment``, or the end of the quiet window it falls in (store time zone)."""
    if not hours:
        return moment
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    start, end = _clock(hours["start"]), _clock(hours["end"])
    if not _is_quiet(local.time(), start, end):
        return moment
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(moment.tzinfo)


def _is_quiet(now: time, start: time, end: time) -> bool:
    if start < end:
        return start <= now < end
    return now >= start or now < end  # the window crosses midnight


def _clock(value: str) -> time:
    return time.fromisoformat(value)


def merge_payloads(held: Mapping[str, Any], latest: Mapping[str, Any]) -> dict[str, Any]:
    """One message about the latest state, measured from where the held one started."""
    kinds = list(dict.fromkeys([*held.get("kinds", []), *latest.get("kinds", [])]))
    merged = dict(latest) | {"kinds": kinds}
    merged["balance_before"] = held.get("balance_before", latest.get("balance_before"))
    merged["before"] = held.get("before", latest.get("before"))
    return merged
