"""RELAY_SECRET_KEY: Fernet keys used as they are, passphrases stretched with HKDF
(with a warning), rotation, and rows written by the earlier SHA-256 derivation."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from worker.config import ConfigError, load_settings
from worker.crypto import Cipher, CredentialsError, generate_key

VALUES = {"access_token": "tok-1", "refresh_token": "ref-1"}


def sealed_by_earlier_versions(key: str) -> bytes:
    """What the previous code wrote: Fernet(SHA-256 of the key string), whatever the key."""
    legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))
    return legacy.encrypt(json.dumps(VALUES, sort_keys=True).encode())


def test_it_uses_a_fernet_key_as_it_is() -> None:
    key = generate_key()
    token = Cipher(key).seal(VALUES)
    assert json.loads(Fernet(key.encode()).decrypt(token)) == VALUES


def test_it_stretches_a_passphrase_with_hkdf_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    passphrase = "correct horse battery staple"
    with caplog.at_level(logging.WARNING, logger="worker.crypto"):
        token = Cipher(passphrase).seal(VALUES)
    assert "not a Fernet key" in caplog.text and "keygen" in caplog.text
    assert passphrase not in caplog.text
    legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))
    with pytest.raises(InvalidToken):
        legacy.decrypt(token)  # not the bare SHA-256 any more
    assert Cipher(passphrase).open(token) == VALUES


def test_it_says_nothing_for_a_fernet_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.crypto"):
        Cipher(generate_key())
    assert caplog.text == ""


@pytest.mark.parametrize("key", ["an old passphrase of some length", generate_key()])
def test_it_still_opens_rows_written_with_the_sha256_derivation(key: str) -> None:
    assert Cipher(key).open(sealed_by_earlier_versions(key)) == VALUES
    assert Cipher(f"{generate_key()},{key}").open(sealed_by_earlier_versions(key)) == VALUES


def test_it_rotates_keys_first_encrypts_all_decrypt() -> None:
    old, new = generate_key(), generate_key()
    token = Cipher(old).seal(VALUES)
    rotated = Cipher(f"{new}, {old}")
    assert rotated.open(token) == VALUES
    assert Cipher(new).open(rotated.seal(VALUES)) == VALUES
    with pytest.raises(CredentialsError, match="cannot be decrypted"):
        Cipher(new).open(token)


@pytest.mark.parametrize("key", ["short", "k", "fifteen-chars!!", f"{generate_key()},short"])
def test_production_refuses_a_weak_passphrase(tmp_path: Path, key: str) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_ENV": "production", "RELAY_SECRET_KEY": key}
    with pytest.raises(ConfigError, match="keygen"):
        load_settings(env)


@pytest.mark.parametrize("key", [generate_key(), "a passphrase of sixteen+ chars"])
def test_production_accepts_a_fernet_key_or_a_long_passphrase(tmp_path: Path, key: str) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_ENV": "production", "RELAY_SECRET_KEY": key}
    assert load_settings(env).secret_key == key


def test_the_generated_development_key_is_a_fernet_key(tmp_path: Path) -> None:
    key = load_settings({"RELAY_DATA_DIR": str(tmp_path)}).secret_key
    Fernet(key.encode())


class CountedFernet:
    """The cipher's own MultiFernet, counting what it decrypts."""

    def __init__(self, inner: object) -> None:
        self.inner, self.decrypted = inner, 0

    def decrypt(self, token: bytes) -> bytes:
        self.decrypted += 1
        return self.inner.decrypt(token)  # type: ignore[attr-defined, no-any-return]

    def encrypt(self, data: bytes) -> bytes:
        return self.inner.encrypt(data)  # type: ignore[attr-defined, no-any-return]


def test_kept_values_are_decrypted_once_per_sealed_value() -> None:
    cipher = Cipher(generate_key())
    counted = CountedFernet(cipher._fernet)
    cipher._fernet = counted  # type: ignore[assignment]
    sealed = cipher.seal({"access_token": "t-1", "webhook_secrets": ["s"]})
    first = cipher.open_kept(sealed)
    first["access_token"] = "changed by a caller"
    assert cipher.open_kept(sealed) == {"access_token": "t-1", "webhook_secrets": ["s"]}
    assert counted.decrypted == 1
    resealed = cipher.seal({"access_token": "t-2"})  # a refreshed token is sealed anew
    assert cipher.open_kept(resealed) == {"access_token": "t-2"}
    assert counted.decrypted == 2
    assert cipher.open(sealed)["access_token"] == "t-1"  # ``open`` decrypts every time
    assert counted.decrypted == 3
    assert cipher.open_kept(None) == {} and cipher.open_kept(b"") == {}


def test_a_kept_value_sealed_with_another_key_is_refused_like_open() -> None:
    sealed = Cipher(generate_key()).seal({"access_token": "t"})
    with pytest.raises(CredentialsError):
        Cipher(generate_key()).open_kept(sealed)
