"""Encryption keys: parsing, key ids, keyrings and building them from the settings."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from modelyard.errors import ConfigurationError
from modelyard.security.encryption import (
    KEY_SIZE,
    Keyring,
    encode_key,
    generate_key,
    key_id,
    keyring_from_settings,
    parse_keys,
)
from modelyard.settings import SecuritySettings

K1, K2 = bytes(range(32)), bytes(range(1, 33))
B1, B2 = encode_key(K1), encode_key(K2)


def test_key_id_is_the_first_16_hex_digits_of_the_keys_sha256() -> None:
    assert key_id(K1) == hashlib.sha256(K1).hexdigest()[:16]
    assert key_id(K1) != key_id(K2)


def test_generated_keys_are_random_32_bytes() -> None:
    a, b = generate_key(), generate_key()
    assert len(a) == KEY_SIZE
    assert a != b
    assert base64.b64decode(encode_key(a)) == a


@pytest.mark.parametrize(("text", "expected"), [
    (B1, [K1]),
    (f"  {B1}\n", [K1]),
    (f"{B1},{B2}", [K1, K2]),
    (f"# new key first\n{B2}\n\n# the old one, until rotate-key has run\n{B1}\n", [K2, K1]),
], ids=["one", "padded", "comma-separated", "lines-with-comments"])
def test_parse_keys(text: str, expected: list[bytes]) -> None:
    assert parse_keys(text) == expected


@pytest.mark.parametrize(("text", "match"), [
    ("", "The encryption key is empty"),
    ("# only a comment\n", "The encryption key is empty"),
    ("not-base64!", r"The encryption key is not valid base64 \(it starts with 'not-'"),
    (encode_key(bytes(16)), "The encryption key decodes to 16 bytes; AES-256 needs exactly 32"),
    (f"{B1}\n{encode_key(bytes(33))}", "Key 2 of the encryption key decodes to 33 bytes"),
], ids=["empty", "comment-only", "not-base64", "16-bytes", "second-key-33-bytes"])
def test_bad_keys_are_clear_configuration_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        parse_keys(text)
    assert info.value.hint == "Generate a key with: modelyard security generate-key -o KEYFILE."


def test_keyring_holds_current_and_older_keys_and_never_shows_them() -> None:
    ring = Keyring(K2, [K1, K2])
    assert ring.current == K2
    assert ring.ids == (key_id(K2), key_id(K1))
    assert ring.key(key_id(K1)) == K1
    assert ring.key("0" * 16) is None
    assert key_id(K1) in ring
    assert B1 not in repr(ring)
    assert B2 not in repr(ring)
    assert repr(ring) == f"Keyring(current={key_id(K2)!r}, ids={list(ring.ids)!r})"


def test_keyring_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(ConfigurationError, match="must be 32 bytes; got 31"):
        Keyring(bytes(31))


def test_settings_without_a_key_turn_encryption_off() -> None:
    assert keyring_from_settings(SecuritySettings()) is None


def test_settings_key_inline() -> None:
    ring = keyring_from_settings(SecuritySettings(encryption_key=SecretStr(B1)))
    assert ring is not None
    assert ring.current_id == key_id(K1)


def test_settings_key_file_with_the_old_key_second(tmp_path: Path) -> None:
    path = tmp_path / "enc.key"
    path.write_text(f"{B2}\n{B1}\n")
    ring = keyring_from_settings(SecuritySettings(encryption_key_file=path))
    assert ring is not None
    assert ring.ids == (key_id(K2), key_id(K1))


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.settings import Settings

    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY", B1)
    ring = keyring_from_settings(Settings().security)
    assert ring is not None
    assert ring.current_id == key_id(K1)


@pytest.mark.parametrize(("kind", "match"), [
    ("both", "Both security.encryption_key and security.encryption_key_file are set"),
    ("missing-file", "There is no encryption key file at"),
    ("short-file", r"The key file '.*short.key' decodes to 8 bytes"),
    ("bad-inline", "MODELYARD_SECURITY__ENCRYPTION_KEY is not valid base64"),
], ids=["both", "missing-file", "short-file", "bad-inline"])
def test_bad_key_settings_are_clear_errors(tmp_path: Path, kind: str, match: str) -> None:
    short = tmp_path / "short.key"
    short.write_text(encode_key(bytes(8)))
    options: dict[str, object] = {
        "both": {"encryption_key": SecretStr(B1), "encryption_key_file": short},
        "missing-file": {"encryption_key_file": tmp_path / "nope.key"},
        "short-file": {"encryption_key_file": short},
        "bad-inline": {"encryption_key": SecretStr("%%%")},
    }[kind]  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match=match):
        keyring_from_settings(SecuritySettings.model_validate(options))


def test_the_short_environment_names_set_the_security_section(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from modelyard.security.encryption import encode_key, generate_key, keyring_from_settings
    from modelyard.settings import Settings

    key = encode_key(generate_key())
    monkeypatch.setenv("MODELYARD_ENCRYPTION_KEY", key)
    settings = Settings()
    assert settings.security.encryption_key is not None
    assert settings.security.encryption_key.get_secret_value() == key
    assert keyring_from_settings(settings.security) is not None
    assert key not in repr(settings)
