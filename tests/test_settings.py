"""Settings: TOML file plus KEYLINE_* environment, secrets masked and read from owner-only files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from config.inventory.model import SecretRef
from config.secrets import SecretError, mask_secrets, resolve_secret
from config.settings import SettingsError, load_settings, session_secret
from keyline.logs import setup_logging


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KEYLINE_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_file_values_and_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = write(tmp_path / "keyline.toml", """
data_dir = "/srv/keyline"
listen_port = 9000
[poll]
default_interval_s = 30
groups = { gold = 5 }
""")
    monkeypatch.setenv("KEYLINE_LISTEN_PORT", "9100")
    monkeypatch.setenv("KEYLINE_POLL__TIMEOUT_S", "7")
    settings = load_settings(config)
    assert settings.data_dir == Path("/srv/keyline")
    assert settings.listen_port == 9100  # the environment wins over the file
    assert settings.poll.default_interval_s == 30
    assert settings.poll.timeout_s == 7
    assert settings.poll.interval_s_for("gold") == 5
    assert settings.poll.interval_s_for("anything-else") == 30


def test_config_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = write(tmp_path / "other.toml", "listen_host = '127.0.0.2'\n")
    monkeypatch.setenv("KEYLINE_CONFIG", str(config))
    assert load_settings().listen_host == "127.0.0.2"


def test_unknown_setting_names_field_and_file(tmp_path: Path):
    config = write(tmp_path / "keyline.toml", "listen_prot = 80\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert "listen_prot" in str(caught.value)
    assert str(config) in str(caught.value)
    assert "unknown setting" in str(caught.value)


def test_bad_value_names_field_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEYLINE_POLL__DEFAULT_INTERVAL_S", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    assert "poll.default_interval_s" in str(caught.value)
    assert "KEYLINE_POLL__DEFAULT_INTERVAL_S" in str(caught.value)


def test_broken_toml_is_one_clear_error(tmp_path: Path):
    config = write(tmp_path / "keyline.toml", "listen_port = = 3\n")
    with pytest.raises(SettingsError, match=r"keyline\.toml"):
        load_settings(config)


def test_missing_settings_file(tmp_path: Path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secret_repr_is_masked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEYLINE_SECRET_KEY", "s3cret-session-key-value")
    monkeypatch.setenv("KEYLINE_DATABASE_URL", "postgresql://keyline:db-pass-9876@localhost/k")
    settings = load_settings(None)
    assert settings.secret_key.get_secret_value() == "s3cret-session-key-value"
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "s3cret-session-key-value" not in text
        assert "db-pass-9876" not in text


def test_secret_file_must_be_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secret_file = write(tmp_path / "key", "file-secret-abcdef\n", mode=0o644)
    monkeypatch.setenv("KEYLINE_SECRET_KEY_FILE", str(secret_file))
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    assert "chmod 600" in str(caught.value)
    assert "file-secret-abcdef" not in str(caught.value)
    secret_file.chmod(0o600)
    assert load_settings(None).secret_key.get_secret_value() == "file-secret-abcdef"


def test_generated_session_key_is_kept_owner_only(tmp_path: Path):
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data"})
    first = session_secret(settings).get_secret_value()
    assert len(first) >= 32
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert session_secret(settings).get_secret_value() == first


def test_inventory_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_COMMUNITY", "community-xyz-123")
    resolved = resolve_secret(SecretRef("env", "LAB_COMMUNITY"))
    assert resolved.get_secret_value() == "community-xyz-123"
    with pytest.raises(SecretError, match="NOT_SET_ANYWHERE"):
        resolve_secret(SecretRef("env", "NOT_SET_ANYWHERE"))
    shared = write(tmp_path / "v3key", "v3-priv-key-000", mode=0o640)
    with pytest.raises(SecretError) as caught:
        resolve_secret(SecretRef("file", str(shared)))
    assert "v3-priv-key-000" not in str(caught.value)


def test_secrets_masked_in_logs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("LAB_COMMUNITY", "community-in-a-log-line")
    resolve_secret(SecretRef("env", "LAB_COMMUNITY"))
    setup_logging("INFO")
    logging.getLogger("keyline.test").warning("polling with %s failed", "community-in-a-log-line")
    captured = capsys.readouterr()
    assert "community-in-a-log-line" not in captured.err
    assert "polling with ******** failed" in captured.err
    assert mask_secrets("x community-in-a-log-line y") == "x ******** y"


def test_trap_and_spool_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEYLINE_TRAPS__PORT", "11162")
    settings = load_settings(None, overrides={"data_dir": tmp_path})
    assert settings.traps.port == 11162
    assert settings.spool_dir == tmp_path / "spool"
    monkeypatch.setenv("KEYLINE_SPOOL__MAX_BYTES", "10")
    with pytest.raises(SettingsError, match=r"spool\.max_bytes"):
        load_settings(None)
