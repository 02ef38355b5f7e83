"""``preview`` and ``sinks add … email``, through click's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import relay_env
from worker.cli.app import main
from worker.cli.kit import Target
from worker.config import Settings
from worker.runtime import Runtime
from worker.sinks.email_cli import PREVIEW_DIR, add_email, preview
from worker.storage.models import Sink


def test_it_previews_an_arabic_email_to_an_html_file(tmp_path: Path) -> None:
    out = tmp_path / "expiring.html"

    result = CliRunner().invoke(
        preview, ["--kind", "points.expiring_soon", "--lang", "ar", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == str(out)
    html = out.read_text(encoding="utf-8")
    assert '<html lang="ar" dir="rtl">' in html and "تنتهي صلاحية" in html
    assert "900 نقطة" in html  # Latin digits unless asked otherwise
    assert "تذكير" in out.with_suffix(".txt").read_text(encoding="utf-8")


def test_it_previews_with_arabic_indic_digits_and_a_merchant_override(tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "points_spent.ar.html").write_text(
        '{% extends "base.ar.html" %}{% block content %}<p>تجربة {{ change|number }}</p>'
        "{% endblock %}"
    )
    out = tmp_path / "spent.html"

    args = ["--kind", "points_spent", "--digits", "arabic-indic", "--templates-dir", str(overrides)]
    result = CliRunner().invoke(preview, [*args, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "<p>تجربة ٥٠٠</p>" in out.read_text(encoding="utf-8")


def test_it_writes_previews_to_the_preview_folder_by_default() -> None:
    result = CliRunner().invoke(preview, ["--kind", "points.tier_changed", "--lang", "en"])

    assert result.exit_code == 0, result.output
    path = Path(result.output.splitlines()[-1])
    assert path == PREVIEW_DIR / "tier_changed.en.html"
    assert '<html lang="en" dir="ltr">' in path.read_text(encoding="utf-8")


def test_it_explains_a_broken_override_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "points_expired.ar.txt").write_text("{% block subject %}{{ x }}{% endblock %}")
    args = ["--kind", "points.expired", "--templates-dir", str(tmp_path)]

    result = CliRunner().invoke(preview, [*args, "--out", str(tmp_path / "x.html")])

    assert result.exit_code == 1
    assert "Error: email template points_expired.ar failed: 'x' is undefined" in result.output


@pytest.fixture
def env(runtime: Runtime, tmp_path: Path, settings: Settings, redis_url: str) -> dict[str, str]:
    environment = relay_env(tmp_path, settings.database_url, redis_url)
    store = ["stores", "add", "salla", "--merchant-id", "1234509876", "--access-token", "t"]
    assert CliRunner().invoke(main, store, env=environment).exit_code == 0
    return environment


def test_it_adds_an_email_sink_with_its_secret_sealed(
    env: dict[str, str], runtime: Runtime
) -> None:
    target = Target("salla", "1234509876", ["points.expiring_soon"])
    args = [
        "--host", "smtp.example.com", "--user", "relay", "--password", "s3cret-pass",
        "--from-address", "points@rayhan.example", "--digits", "arabic-indic",
        "--primary-color", "#0F766E", "--default-language", "ar",
    ]  # fmt: skip

    result = CliRunner().invoke(add_email, args, obj=target, env=env)

    assert result.exit_code == 0, result.output
    assert "(email) added to salla:1234509876" in result.output
    with runtime.sessions() as session:
        sink = session.scalars(select(Sink)).one()
    assert (sink.kind, sink.kinds) == ("email", ["points.expiring_soon"])
    assert "s3cret-pass" not in str(sink.config)
    config = runtime.cipher.open(sink.config)
    assert (config["port"], config["security"], config["password"]) == (
        587,
        "starttls",
        "s3cret-pass",
    )
    assert (config["digits"], config["primary_color"]) == ("arabic-indic", "#0f766e")


def test_it_refuses_an_email_sink_with_a_bad_option(env: dict[str, str]) -> None:
    target = Target("salla", "1234509876", ["points.expired"])
    args = ["--host", "smtp.example.com", "--from-address", "points@rayhan.example"]

    result = CliRunner().invoke(add_email, [*args, "--user", "relay"], obj=target, env=env)

    assert result.exit_code == 2
    assert "password: give both or neither" in result.output
