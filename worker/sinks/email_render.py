"""What a customer's email says: which message a change deserves, in which
language, and its subject, HTML and plain text.

Pure (no SMTP, no database) so that the rules are tested directly and the
``preview`` command shows exactly what a customer would get.

Templates live in ``worker/templates/email/`` as ``<message>.<lang>.html`` and
``.txt`` (plus the ``base.<lang>.*`` layouts and ``components.html``). A merchant
overrides any of them by dropping a file with the same name in a directory
given first in ``template_dirs``. The subject is the ``subject`` block of the
``.txt`` template, so it is never HTML-escaped; an override of a ``.txt``
extends ``base.<lang>.txt`` like the built-ins do (a template that extends
nothing prints its blocks where they stand, the subject included). Templates run sandboxed: they
are files an operator drops in, not code we reviewed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.errors import PermanentError
from worker.points import BALANCE_CHANGED, EXPIRED, EXPIRING_SOON, TIER_CHANGED
from worker.sinks.base import OutboundDelivery
from worker.sinks.skips import SkippedDelivery

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
LANGUAGES = ("ar", "en")
DIGIT_STYLES = ("latin", "arabic-indic")
POINTS_EARNED, POINTS_SPENT = "points_earned", "points_spent"
POINTS_EXPIRING_SOON, POINTS_EXPIRED, TIER_CHANGED_MESSAGE = (
    "points_expiring_soon",
    "points_expired",
    "tier_changed",
)
MESSAGES = (POINTS_EARNED, POINTS_SPENT, POINTS_EXPIRING_SOON, POINTS_EXPIRED, TIER_CHANGED_MESSAGE)
NOTHING_TO_TELL = "nothing to tell the customer"
EXPIRY_ALREADY_TOLD = "the decrease is points expiring, which points.expired announces"

_ARABIC_INDIC = str.maketrans("0123456789,.", "٠١٢٣٤٥٦٧٨٩٬٫")
_AR_MONTHS = (
    "يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو",
    "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر",
)  # fmt: skip
_AR_WEEKDAYS = ("الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت", "الأحد")
_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    lang: str


@dataclass(frozen=True)
class Brand:
    """How the store looks in its emails (from the sink's config)."""

    store_name: str
    primary_color: str = "#0f766e"
    accent_color: str = "#d97706"
    digits: str = "latin"  # only Arabic text uses it; English is always Latin


class TemplateProblem(PermanentError):
    """A template (usually a merchant's override) failed to render: fix it, then replay."""


# Which message -------------------------------------------------------------


def choose_message(delivery: OutboundDelivery) -> str:
    """The message a change deserves, or ``SkippedDelivery`` when it deserves none.

    Only the kinds the sink subscribed to count (``payload["kinds"]``). A balance
    change that leaves the available points as they were (only pending points
    moved) and a bare expiry change say nothing a customer can act on: skipped.
    """
    payload = delivery.payload
    kinds = payload.get("kinds") or [delivery.event_type]
    if delivery.event_type in (EXPIRING_SOON, EXPIRED):
        return _expiry_message(delivery.event_type, payload)
    change = _number(payload.get("balance_after")) - _number(payload.get("balance_before"))
    if BALANCE_CHANGED in kinds and change > 0:
        return POINTS_EARNED
    if BALANCE_CHANGED in kinds and change < 0:
        return _decrease_message(delivery, -change)
    if TIER_CHANGED in kinds and payload.get("tier"):
        return TIER_CHANGED_MESSAGE
    raise SkippedDelivery(NOTHING_TO_TELL)


def _expiry_message(event_type: str, payload: Mapping[str, Any]) -> str:
    if not payload.get("next_expiry_date") or _number(payload.get("next_expiry_points")) <= 0:
        raise SkippedDelivery(NOTHING_TO_TELL)
    return POINTS_EXPIRING_SOON if event_type == EXPIRING_SOON else POINTS_EXPIRED


def _decrease_message(delivery: OutboundDelivery, decrease: Decimal) -> str:
    """Points that reached their expiry time leave the balance too; saying "deducted"
    after the expiry email would tell the customer the same loss twice."""
    before = delivery.payload.get("before") or {}
    expired_at = _moment(before.get("next_expiry_at"))
    expired_points = _number(before.get("next_expiry_points"))
    if expired_at and expired_at <= delivery.created_at and decrease == expired_points:
        raise SkippedDelivery(EXPIRY_ALREADY_TOLD)
    return POINTS_SPENT


def customer_language(
    contact_locale: str | None, default_language: str | None, store_locale: str | None
) -> str:
    """The customer's own language when the platform knows it, else the sink's, else the store's."""
    for candidate in (contact_locale, default_language, store_locale):
        language = (candidate or "")[:2].lower()
        if language in LANGUAGES:
            return language
    return "ar"


# What it says --------------------------------------------------------------


def message_context(delivery: OutboundDelivery, brand: Brand) -> dict[str, Any]:
    """Everything a template may use; raw values, formatted by the filters per language."""
    payload = delivery.payload
    before = _number(payload.get("balance_before"))
    balance = _number(payload.get("balance_after"))
    return {
        "store_name": brand.store_name,
        "customer_name": " ".join((delivery.contact.name or "").split()) or None,
        "primary_color": brand.primary_color,
        "on_primary": text_color_on(brand.primary_color),
        "accent_color": brand.accent_color,
        "ink_color": brand.primary_color if _is_dark(brand.primary_color) else "#111827",
        "digits": brand.digits,
        "balance": balance,
        "balance_before": before,
        "change": abs(balance - before),
        "pending": _number(payload.get("pending")),
        "expiry_date": _day(payload.get("next_expiry_date")),
        "expiry_points": _number(payload.get("next_expiry_points")),
        "tier": payload.get("tier"),
        "previous_tier": (payload.get("before") or {}).get("tier"),
        "tier_changed": TIER_CHANGED in (payload.get("kinds") or ()),
    }


def render(
    kind: str, lang: str, context: Mapping[str, Any], *, template_dirs: Sequence[Path] = ()
) -> RenderedEmail:
    """Subject, HTML and text of message ``kind`` in ``lang``; overrides come first."""
    if kind not in MESSAGES or lang not in LANGUAGES:
        raise ValueError(f"no email for {kind!r} in {lang!r}")
    environment = _environment(tuple(str(directory) for directory in template_dirs))
    values = {**context, "lang": lang}
    try:
        text_template = environment.get_template(f"{kind}.{lang}.txt")
        subject = _subject(text_template, values)
        text = text_template.render(values)
        html = environment.get_template(f"{kind}.{lang}.html").render(values | {"subject": subject})
    except TemplateError as exc:
        raise TemplateProblem(f"email template {kind}.{lang} failed: {exc.message}") from None
    return RenderedEmail(subject, html.strip() + "\n", _tidy(text), lang)


def _subject(template: Template, values: Mapping[str, Any]) -> str:
    block = template.blocks.get("subject")
    if block is None:
        raise TemplateProblem(f"{template.name} has no {{% block subject %}}")
    # One line, whatever the template's whitespace: a header cannot hold a newline.
    return " ".join("".join(block(template.new_context(dict(values)))).split())


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


@lru_cache(maxsize=32)
def _environment(template_dirs: tuple[str, ...]) -> ImmutableSandboxedEnvironment:
    """One environment per set of override directories (templates compile once per process)."""
    loaders: list[BaseLoader] = [FileSystemLoader(path) for path in template_dirs]
    environment = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader([*loaders, FileSystemLoader(BUILTIN_TEMPLATES)]),
        autoescape=select_autoescape(("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(number=_number_filter, points=_points_filter, day=_day_filter)
    return environment


# Filters: numbers and dates as the customer reads them ---------------------


@pass_context
def _number_filter(context: Context, value: Any) -> str:
    return format_number(value, _digit_style(context))


@pass_context
def _points_filter(context: Context, value: Any, case: str = "nominative") -> str:
    return points_phrase(value, context["lang"], _digit_style(context), case)


@pass_context
def _day_filter(context: Context, value: date) -> str:
    return format_day(value, context["lang"], _digit_style(context))


def _digit_style(context: Context) -> str:
    return str(context.get("digits", "latin")) if context["lang"] == "ar" else "latin"


def format_number(value: Any, digits: str = "latin") -> str:
    """``1,250`` or ``١٬٢٥٠``; fractions keep at most two decimals, without trailing zeros."""
    amount = _number(value)
    if amount == amount.to_integral_value():
        text = f"{amount:,.0f}"
    else:
        text = f"{amount:,.2f}".rstrip("0").rstrip(".")
    return _localise_digits(text, digits)


def points_phrase(value: Any, lang: str, digits: str = "latin", case: str = "nominative") -> str:
    """The count with its noun: ``1 point``/``250 points``; in Arabic the counted noun
    follows the number (``نقطة واحدة``, ``نقطتان``/``نقطتين``, ``٥ نقاط``, ``٢٥٠ نقطة``).

    ``case="oblique"`` gives the dual for after a preposition or as an object.
    """
    amount = _number(value)
    number = format_number(amount, digits)
    if lang != "ar":
        return f"{number} point" if amount == 1 else f"{number} points"
    if amount == 1:
        return "نقطة واحدة"
    if amount == 2:
        return "نقطتان" if case == "nominative" else "نقطتين"
    whole = amount == amount.to_integral_value()
    return f"{number} نقاط" if whole and 3 <= int(amount) % 100 <= 10 else f"{number} نقطة"


def format_day(day: date, lang: str, digits: str = "latin") -> str:
    """``Thursday 26 November 2026`` / ``الخميس ٢٦ نوفمبر ٢٠٢٦`` (no year grouping)."""
    if lang == "ar":
        text = f"{_AR_WEEKDAYS[day.weekday()]} {day.day} {_AR_MONTHS[day.month - 1]} {day.year}"
        return _localise_digits(text, digits)
    return f"{_EN_WEEKDAYS[day.weekday()]} {day.day} {_EN_MONTHS[day.month - 1]} {day.year}"


def _localise_digits(text: str, digits: str) -> str:
    return text.translate(_ARABIC_INDIC) if digits == "arabic-indic" else text


# Colours -------------------------------------------------------------------


def text_color_on(background: str) -> str:
    """White or near-black, whichever reads better on the merchant's colour (WCAG luminance)."""
    return "#ffffff" if _is_dark(background) else "#111827"


def _is_dark(color: str) -> bool:
    channels = [int(color[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return luminance < 0.179  # where white and black text have the same contrast


# Payload values ------------------------------------------------------------


def _number(value: Any) -> Decimal:
    """Payload numbers are JSON ints or floats; junk counts as zero rather than crashing a send."""
    if value is None or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.utcoffset() is not None else None
