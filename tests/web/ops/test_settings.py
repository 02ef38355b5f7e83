"""RELAY_OPS_USERS and RELAY_OPS_TOKEN are parsed strictly, from the variable or a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from worker.config import ConfigError, load_settings

HASH = generate_password_hash("a long enough password")


def test_it_reads_users_and_their_hashes(tmp_path: Path) -> None:
    settings = load_settings(
        {"RELAY_DATA_DIR": str(tmp_path), "RELAY_OPS_USERS": f"ana:{HASH}, omar:{HASH}"}
    )
    assert [user for user, _ in settings.ops_users] == ["ana", "omar"]
    assert check_password_hash(dict(settings.ops_users)["omar"], "a long enough password")
    assert settings.ops_enabled


def test_it_reads_users_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "ops-users"
    secret.write_text(f"ana:{HASH}\n")
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_OPS_USERS_FILE": str(secret)})
    assert dict(settings.ops_users)["ana"] == HASH


def test_it_is_off_by_default(tmp_path: Path) -> None:
    assert not load_settings({"RELAY_DATA_DIR": str(tmp_path)}).ops_enabled


@pytest.mark.parametrize(
    "value", ["ana:hunter2-in-clear", f":{HASH}", "ana", f"ana:{HASH},ana:{HASH}"]
)
def test_it_refuses_what_is_not_user_and_hash(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="RELAY_OPS_USERS") as raised:
        load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_OPS_USERS": value})
    assert "hunter2" not in str(raised.value)  # a clear password is never echoed


def test_it_refuses_a_short_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RELAY_OPS_TOKEN"):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_OPS_TOKEN": "short"})
    token = "t" * 32
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_OPS_TOKEN": token})
    assert settings.ops_token == token and settings.ops_enabled
