"""What a customer's email says: the pure rules and templates, without SMTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from worker.points import (
    BALANCE_CHANGED,
    EXPIRED,
    EXPIRING_SOON,
    EXPIRY_CHANGED,
    TIER_CHANGED,
    CustomerContact,
    PointsSnapshot,
    change_payload,
)
from worker.sinks.base import OutboundDelivery, StoreInfo
from worker.sinks.email_render import (
    EXPIRY_ALREADY_TOLD,
    NOTHING_TO_TELL,
    Brand,
    TemplateProblem,
    choose_message,
    customer_language,
    format_day,
    format_number,
    message_context,
    points_phrase,
    render,
    text_color_on,
)
from worker.sinks.skips import SkippedDelivery

NOW = datetime(2026, 11, 23, 9, 20, tzinfo=UTC)
EXPIRY = datetime(2026, 11, 26, 9, 20, tzinfo=UTC)  # a Thursday


def snapshot(available: int, *, pending: int = 0, tier: str | None = None, **extra: Any) -> Any:
    values: dict[str, Any] = {"next_expiry_at": EXPIRY, "next_expiry_points": Decimal(900)}
    return PointsSnapshot(Decimal(available), Decimal(pending), tier=tier, **(values | extra))


def delivery(
    kinds: list[str],
    before: PointsSnapshot,
    after: PointsSnapshot,
    *,
    name: str | None = "سارة",
    created_at: datetime = NOW,
) -> OutboundDelivery:
    payload = change_payload(
        platform="salla", store="salla:1234509876", customer_id="1257881496", kinds=kinds,
        before=before, after=after, timezone="Asia/Riyadh",
    )  # fmt: skip
    return OutboundDelivery(
        id="msg_2mJ0rQ7dNnXhH5l6",
        event_type=kinds[0],
        payload=payload,
        created_at=created_at,
        attempt=1,
        store=StoreInfo("salla:1234509876", "متجر الريحان"),
        contact=CustomerContact(email="sara@example.com", name=name, locale="ar"),
    )


def earned(name: str | None = "سارة") -> OutboundDelivery:
    return delivery(
        [BALANCE_CHANGED, EXPIRY_CHANGED], snapshot(2860, pending=720), snapshot(3110, pending=720),
        name=name,
    )  # fmt: skip


def rendered(lang: str, digits: str = "latin", store_name: str = "متجر الريحان", **kw: Any) -> Any:
    item = kw.pop("item", None) or earned()
    context = message_context(item, Brand(store_name, digits=digits))
    return render(choose_message(item), lang, context, **kw)


@pytest.mark.parametrize(
    ("kinds", "before", "after", "message"),
    [
        ([BALANCE_CHANGED], snapshot(100), snapshot(350), "points_earned"),
        ([BALANCE_CHANGED], snapshot(350), snapshot(100), "points_spent"),
        ([TIER_CHANGED], snapshot(350, tier="Silver"), snapshot(350, tier="Gold"), "tier_changed"),
        ([BALANCE_CHANGED, TIER_CHANGED], snapshot(1), snapshot(9, tier="Gold"), "points_earned"),
        ([EXPIRING_SOON], snapshot(350), snapshot(350), "points_expiring_soon"),
        ([EXPIRED], snapshot(350), snapshot(350), "points_expired"),
        # A sink subscribed to tiers only is not told about the balance that moved with it.
        ([TIER_CHANGED], snapshot(1, tier="Silver"), snapshot(9, tier="Gold"), "tier_changed"),
    ],
)
def test_it_chooses_the_message_a_change_deserves(
    kinds: list[str], before: PointsSnapshot, after: PointsSnapshot, message: str
) -> None:
    assert choose_message(delivery(kinds, before, after)) == message


@pytest.mark.parametrize(
    ("kinds", "before", "after", "reason"),
    [
        ([BALANCE_CHANGED], snapshot(350, pending=0), snapshot(350, pending=80), NOTHING_TO_TELL),
        ([EXPIRY_CHANGED], snapshot(350), snapshot(350, next_expiry_at=NOW), NOTHING_TO_TELL),
        ([TIER_CHANGED], snapshot(350, tier="Gold"), snapshot(350, tier=None), NOTHING_TO_TELL),
        ([EXPIRING_SOON], snapshot(0), snapshot(0, next_expiry_at=None), NOTHING_TO_TELL),
        # After the expiry time the balance drops by the expiring points: already announced.
        (
            [BALANCE_CHANGED],
            snapshot(1000),
            snapshot(100, next_expiry_at=None),
            EXPIRY_ALREADY_TOLD,
        ),
    ],
)
def test_it_skips_changes_with_nothing_to_tell(
    kinds: list[str], before: PointsSnapshot, after: PointsSnapshot, reason: str
) -> None:
    item = delivery(kinds, before, after, created_at=EXPIRY + timedelta(minutes=5))
    with pytest.raises(SkippedDelivery) as caught:
        choose_message(item)
    assert caught.value.reason == reason


def test_it_tells_about_a_decrease_of_the_expiring_amount_before_the_expiry_time() -> None:
    item = delivery([BALANCE_CHANGED], snapshot(1000), snapshot(100), created_at=NOW)
    assert choose_message(item) == "points_spent"


@pytest.mark.parametrize(
    ("contact", "sink_default", "store", "language"),
    [
        ("en-US", "ar", "ar", "en"),
        ("ar_SA", "en", "en", "ar"),
        (None, "en", "ar", "en"),
        ("fr", None, "en", "en"),
        (None, None, "ar", "ar"),
        (None, None, "fr", "ar"),
    ],
)
def test_it_picks_the_customers_language_then_the_sinks_then_the_stores(
    contact: str | None, sink_default: str | None, store: str, language: str
) -> None:
    assert customer_language(contact, sink_default, store) == language


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (250, "arabic-indic", "٢٥٠"),
        (3110, "arabic-indic", "٣٬١١٠"),
        (12.5, "arabic-indic", "١٢٫٥"),
        (3110, "latin", "3,110"),
        (12.25, "latin", "12.25"),
        (7.0, "latin", "7"),
    ],
)
def test_it_formats_numbers_in_the_configured_digits(value: float, digits: str, text: str) -> None:
    assert format_number(value, digits) == text


@pytest.mark.parametrize(
    ("value", "case", "phrase"),
    [
        (1, "nominative", "نقطة واحدة"),
        (2, "nominative", "نقطتان"),
        (2, "oblique", "نقطتين"),
        (5, "nominative", "٥ نقاط"),
        (10, "oblique", "١٠ نقاط"),
        (11, "nominative", "١١ نقطة"),
        (250, "nominative", "٢٥٠ نقطة"),
        (103, "nominative", "١٠٣ نقاط"),
        (12.5, "nominative", "١٢٫٥ نقطة"),
    ],
)
def test_it_counts_points_as_arabic_grammar_wants(value: float, case: str, phrase: str) -> None:
    assert points_phrase(value, "ar", "arabic-indic", case) == phrase


def test_it_counts_points_in_english() -> None:
    assert [points_phrase(n, "en") for n in (1, 2, 1250)] == ["1 point", "2 points", "1,250 points"]


def test_it_formats_the_expiry_day_per_language() -> None:
    day = date(2026, 11, 26)
    assert format_day(day, "ar", "arabic-indic") == "الخميس ٢٦ نوفمبر ٢٠٢٦"
    assert format_day(day, "ar", "latin") == "الخميس 26 نوفمبر 2026"
    assert format_day(day, "en") == "Thursday 26 November 2026"


def test_it_renders_arabic_right_to_left_with_arabic_indic_digits() -> None:
    email = rendered("ar", "arabic-indic")

    assert email.lang == "ar"
    assert email.subject == "حصلت على ٢٥٠ نقطة في متجر الريحان"
    assert '<html lang="ar" dir="rtl">' in email.html
    assert "مرحبًا <bdi>سارة</bdi>،" in email.html
    for text in (email.html, email.text):
        assert "٣٬١١٠ نقاط" in text and "٧٢٠ نقطة" in text
        assert "الخميس ٢٦ نوفمبر ٢٠٢٦" in text
        assert "برنامج نقاط الولاء لدى" in text  # why they got it
    assert "3110" not in email.text and "250" not in email.html


def test_it_renders_arabic_with_latin_digits_when_the_store_prefers_them() -> None:
    email = rendered("ar", "latin")
    assert "3,110 نقاط" in email.text and "250 نقطة" in email.html
    assert "٢٥٠" not in email.html + email.text + email.subject


def test_it_renders_english_left_to_right_with_latin_digits() -> None:
    email = rendered("en", "arabic-indic", store_name="Al Rayhan")

    assert email.subject == "You earned 250 points at Al Rayhan"
    assert '<html lang="en" dir="ltr">' in email.html
    assert "Hi <bdi>سارة</bdi>," in email.html
    assert "Your balance: 3,110 points" in email.text
    assert "Thursday 26 November 2026" in email.text
    assert "The Al Rayhan team" in email.text


def test_it_greets_without_a_name_when_the_platform_has_none() -> None:
    email = rendered("ar", item=earned(name=None))
    assert email.text.startswith("مرحبًا،\n")


def test_it_escapes_html_but_not_the_plain_text_or_subject() -> None:
    email = rendered("en", store_name="Salt & <Pepper>", item=earned(name="<script>x</script>"))

    assert "Salt &amp; &lt;Pepper&gt;" in email.html
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert email.subject == "You earned 250 points at Salt & <Pepper>"
    assert "Hi <script>x</script>," in email.text


def test_it_uses_a_merchant_override_before_the_built_in_template(tmp_path: Path) -> None:
    (tmp_path / "points_earned.en.html").write_text(
        '{% extends "base.en.html" %}{% block content %}<p>Merci! {{ change|points }}</p>'
        "{% endblock %}"
    )

    email = rendered("en", template_dirs=[tmp_path])

    assert "<p>Merci! 250 points</p>" in email.html
    assert "Good news" in email.text  # the text part was not overridden


def test_it_reports_a_broken_override_as_a_template_problem(tmp_path: Path) -> None:
    (tmp_path / "points_earned.ar.txt").write_text("{% block subject %}{{ nope }}{% endblock %}")
    with pytest.raises(TemplateProblem, match="points_earned.ar"):
        rendered("ar", template_dirs=[tmp_path])


def test_it_reports_an_override_without_a_subject(tmp_path: Path) -> None:
    (tmp_path / "points_earned.ar.txt").write_text("hello")
    with pytest.raises(TemplateProblem, match="subject"):
        rendered("ar", template_dirs=[tmp_path])


SPENT = ([BALANCE_CHANGED], snapshot(3110), snapshot(2610))
TIER = ([TIER_CHANGED], snapshot(1, tier="فضي"), snapshot(1, tier="ذهبي"))
STORE = "متجر الريحان"


@pytest.mark.parametrize(
    ("lang", "change", "subject"),
    [
        ("ar", SPENT, f"خُصمت ٥٠٠ نقطة من رصيدك في {STORE}"),
        ("en", SPENT, f"Your balance at {STORE} is now 2,610 points"),
        (
            "ar",
            ([EXPIRING_SOON], snapshot(3110), snapshot(3110)),
            f"تذكير: تنتهي صلاحية ٩٠٠ نقطة من رصيدك في {STORE} قريبًا",
        ),
        (
            "en",
            ([EXPIRED], snapshot(3110), snapshot(3110)),
            f"900 points expired from your balance at {STORE}",
        ),
        ("ar", TIER, f"مستوى عضويتك الجديد في {STORE}: ذهبي"),
        ("en", TIER, f"Your new membership tier at {STORE}: ذهبي"),
    ],
)
def test_it_renders_every_message_with_a_subject_and_both_parts(
    lang: str, change: tuple[list[str], PointsSnapshot, PointsSnapshot], subject: str
) -> None:
    email = rendered(lang, "arabic-indic", item=delivery(*change))
    assert email.subject == subject
    assert f'lang="{lang}"' in email.html and STORE in email.text


@pytest.mark.parametrize(
    ("background", "text"), [("#0f766e", "#ffffff"), ("#ffe08a", "#111827"), ("#000000", "#ffffff")]
)
def test_it_picks_readable_header_text_on_the_brand_colour(background: str, text: str) -> None:
    assert text_color_on(background) == text
