"""Secrets are secrets: masked wherever settings are shown, handed whole only to child processes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from driftloop.cli.main import app
from shared.settings import Settings


def test_every_secret_is_masked_when_settings_are_printed_or_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_INGEST_API_KEYS", '{"k-123-secret": "checkout"}')
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_TOKENS", '{"t-456-secret": "ada:admin"}')
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_TOKEN", "t-456-secret")
    monkeypatch.setenv("DRIFTLOOP_CLICKHOUSE_PASSWORD", "pw-789-secret")
    monkeypatch.setenv("DRIFTLOOP_S3_SECRET_ACCESS_KEY", "s3-000-secret")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_PASSWORD", "sasl-111-secret")
    settings = Settings()
    assert set(Settings.secret_fields()) == {
        "clickhouse_password", "s3_secret_access_key", "registry_token", "registry_tokens", "ingest_api_keys",
        "kafka_sasl_password",
    }  # fmt: skip
    shown = CliRunner().invoke(app, ["settings"]).stdout
    for text in (repr(settings), str(settings), settings.model_dump_json(), shown):
        assert "secret" not in text.replace("SECRET_ACCESS_KEY", "").replace("s3_secret_access_key", "")
    assert settings.registry_tokens.get_secret_value() == {"t-456-secret": "ada:admin"}


def test_a_child_process_gets_the_real_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(ingest_api_keys={"k": "app"}, clickhouse_password="pw", registry_token="t")
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.ingest_api_keys.get_secret_value() == {"k": "app"}
    assert child.clickhouse_password.get_secret_value() == "pw"
    assert child.registry_token.get_secret_value() == "t"


def test_shipped_defaults_are_refused_off_loopback_only() -> None:
    settings = Settings()
    assert settings.shipped_secrets_exposed(["ingest_api_keys"], listens_on="127.0.0.1") == []
    assert settings.shipped_secrets_exposed(["ingest_api_keys"], listens_on="0.0.0.0") == ["ingest_api_keys"]
    s3 = ("https://s3.example.com",)
    assert settings.shipped_secrets_exposed(["s3_secret_access_key"], talks_to=s3) == ["s3_secret_access_key"]
    own = Settings(ingest_api_keys={"mine": "app"}, s3_secret_access_key="mine")
    assert (
        own.shipped_secrets_exposed(
            ["ingest_api_keys", "s3_secret_access_key"], listens_on="0.0.0.0", talks_to=s3
        )
        == []
    )
    with pytest.raises(SystemExit, match="DRIFTLOOP_INGEST_API_KEYS"):
        settings.refuse_shipped_secrets("ingest", ["ingest_api_keys"], listens_on="10.0.0.5")
