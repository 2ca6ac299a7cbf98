"""The local admin token: written once with mode 0600, picked up only for a loopback registry."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.infra.services import ensure_local_token
from shared.settings import Settings


def test_up_writes_a_private_random_token_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert ensure_local_token(settings) is True
    path = tmp_path / "data" / "local-token"
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    path.chmod(0o644)
    assert ensure_local_token(settings) is False
    assert path.read_text().strip() == token, "an existing token is kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a widened mode is narrowed again"
    assert ensure_local_token(Settings(data_dir=tmp_path / "other")) is True
    assert (tmp_path / "other" / "local-token").read_text().strip() != token


def test_a_loopback_registry_sends_and_accepts_the_local_token(tmp_path: Path) -> None:
    (tmp_path / "local-token").write_text("tok-123\n")
    settings = Settings(data_dir=tmp_path, registry_tokens={"w": "wes:writer"})
    assert settings.registry_token.get_secret_value() == "tok-123"
    assert settings.registry_tokens.get_secret_value() == {"w": "wes:writer", "tok-123": "local:admin"}
    assert "tok-123" not in repr(settings) and "tok-123" not in str(settings.model_dump())


def test_an_explicit_client_token_wins_and_the_local_one_is_still_accepted(tmp_path: Path) -> None:
    (tmp_path / "local-token").write_text("tok-123\n")
    settings = Settings(data_dir=tmp_path, registry_token="mine")
    assert settings.registry_token.get_secret_value() == "mine"
    assert settings.registry_tokens.get_secret_value() == {"tok-123": "local:admin"}


@pytest.mark.parametrize("url", ["http://registry:8000", "https://models.example.com"])
def test_a_registry_elsewhere_ignores_the_local_token(tmp_path: Path, url: str) -> None:
    (tmp_path / "local-token").write_text("tok-123\n")
    settings = Settings(data_dir=tmp_path, registry_url=url)
    assert settings.registry_token.get_secret_value() == ""
    assert settings.registry_tokens.get_secret_value() == {}
    assert ensure_local_token(Settings(data_dir=tmp_path / "remote", registry_url=url)) is False
    assert not (tmp_path / "remote").exists()


def test_no_token_file_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.registry_token.get_secret_value() == ""
    assert settings.registry_tokens.get_secret_value() == {}


def test_settings_handed_to_a_child_round_trip_with_the_local_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "local-token").write_text("tok-123\n")
    original = Settings(data_dir=tmp_path)
    for key, value in original.as_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
