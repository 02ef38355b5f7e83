"""Settings added for hardening: log format, the URL policy's allowance and API bases."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_LOG_FORMAT", "xml"),
        ("RELAY_LOG_LEVEL", "LOUD"),
        ("RELAY_ALLOW_PRIVATE_URLS", "maybe"),
        ("SALLA_API_BASE", "http://api.salla.dev/admin/v2"),
        ("ZID_API_BASE", "https://169.254.169.254/v1"),
        ("APPSTLE_API_BASE", "https://0x7f000001"),
        ("SALLA_OAUTH_TOKEN_URL", "https://10.0.0.1/oauth2/token"),
        ("DATABASE_URL", "mysql://relay@db/relay"),
    ],
)
def test_it_refuses_junk(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), name: value})


def test_it_allows_local_api_bases_only_when_told(tmp_path: Path) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "SALLA_API_BASE": "http://127.0.0.1:8100/admin/v2/"}
    settings = load_settings(env | {"RELAY_ALLOW_PRIVATE_URLS": "1"})
    assert (
        settings.allow_private_urls and settings.salla_api_base == "http://127.0.0.1:8100/admin/v2"
    )


def test_its_defaults_are_strict(tmp_path: Path) -> None:
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path)})
    assert (settings.log_format, settings.allow_private_urls) == ("text", False)
    assert settings.salla_api_base.startswith("https://")
