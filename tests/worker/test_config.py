from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_settings


def test_it_defaults_to_the_embedded_setup(tmp_path: Path) -> None:
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/relay.sqlite3"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path}/broker.sqlite3"
    assert settings.embedded and (tmp_path / "secret.key").exists()
    assert load_settings({"RELAY_DATA_DIR": str(tmp_path)}).secret_key == settings.secret_key


def test_it_reads_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("from-a-file\n")
    env = {"RELAY_DATA_DIR": str(tmp_path), "SALLA_WEBHOOK_SECRET_FILE": str(tmp_path / "s")}
    assert load_settings(env).salla_webhook_secrets == ("from-a-file",)


def test_it_normalises_postgres_urls(tmp_path: Path) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgres://u@h/db"}
    assert load_settings(env).database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RELAY_DEBOUNCE_SECONDS", "soon", "RELAY_DEBOUNCE_SECONDS"),
        ("RELAY_MAX_BODY_BYTES", "-1", "negative"),
        ("RELAY_SALLA_QUOTA", "500", "500/600"),
        ("RELAY_DEFAULT_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("SALLA_WEBHOOK_SECRET_FILE", "/nonexistent/secret", "cannot read"),
    ],
)
def test_it_rejects_junk_with_a_readable_message(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), name: value})


def test_it_requires_a_secret_key_in_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RELAY_SECRET_KEY"):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_ENV": "production"})
