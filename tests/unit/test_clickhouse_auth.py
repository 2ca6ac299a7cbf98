"""Who a request is, read as the ClickHouse server reads it, and named sessions kept as it keeps them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from driftloop.clickhouse_server import auth
from driftloop.clickhouse_server.errors import ClickHouseError
from driftloop.clickhouse_server.sessions import Sessions, refuse_stateful

CONFIGURED = auth.Credentials("driftloop", "s3cret")


def basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        (basic("driftloop:s3cret"), {}),
        ({"X-ClickHouse-User": "driftloop", "X-ClickHouse-Key": "s3cret"}, {}),
        ({}, {"user": "driftloop", "password": "s3cret"}),
    ],
)
def test_each_way_of_sending_credentials_is_read(headers: dict[str, str], params: dict[str, str]) -> None:
    given = auth.presented(headers, params)
    assert given == CONFIGURED
    auth.check(CONFIGURED, given)


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        (basic("driftloop:guess"), {}),
        (basic("driftloop"), {}),  # no colon: not basic auth
        ({"Authorization": "Bearer token"}, {}),
        ({"Authorization": "Basic !!!"}, {}),
        ({"X-ClickHouse-User": "driftloop"}, {}),
        ({}, {"user": "admin", "password": "s3cret"}),
        ({}, {}),  # default with an empty password is not the configured user
        (basic("driftloop:s3cret"), {"user": "driftloop"}),  # two ways at once, as ClickHouse refuses
    ],
)
def test_wrong_or_ambiguous_credentials_fail_with_516(
    headers: dict[str, str], params: dict[str, str]
) -> None:
    with pytest.raises(ClickHouseError) as failed:
        auth.check(CONFIGURED, auth.presented(headers, params))
    assert (failed.value.code, failed.value.http_status) == (516, 403)
    assert "AUTHENTICATION_FAILED" in failed.value.message


def test_nothing_sent_is_default_with_an_empty_password() -> None:
    assert auth.presented({}, {}) == auth.Credentials("default", "")
    assert auth.configured({}) == auth.Credentials("default", "")
    env = {auth.USER_ENV: "u", auth.PASSWORD_ENV: "p"}
    assert auth.configured(env) == auth.Credentials("u", "p")


def test_session_check_needs_a_live_session() -> None:
    sessions = Sessions()
    with pytest.raises(ClickHouseError) as missing:
        sessions.use("default", "s", "", check=True)
    assert missing.value.code == 372
    sessions.use("default", "s", "", check=False)
    sessions.use("default", "s", "", check=True)
    with pytest.raises(ClickHouseError):
        sessions.use("other_user", "s", "", check=True)  # sessions belong to their user
    sessions.use("default", "brief", "0", check=False)  # a timeout of 0 expires at once
    with pytest.raises(ClickHouseError):
        sessions.use("default", "brief", "", check=True)
    sessions.close("default", "s")
    with pytest.raises(ClickHouseError):
        sessions.use("default", "s", "", check=True)


@pytest.mark.parametrize("timeout", ["-1", "3601", "soon", "nan"])
def test_session_timeout_out_of_range_is_374(timeout: str) -> None:
    with pytest.raises(ClickHouseError) as bad:
        Sessions().use("default", "s", timeout, check=False)
    assert bad.value.code == 374


def test_stateful_statements_are_refused_only_in_a_session() -> None:
    refuse_stateful("", "SET")
    refuse_stateful("s", "")
    for change in ("SET", "USE", "CREATE TEMPORARY"):
        with pytest.raises(ClickHouseError) as refused:
            refuse_stateful("s", change)
        assert (refused.value.code, refused.value.http_status) == (48, 501)


def test_server_refuses_a_public_address_without_a_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.clickhouse_server.__main__ import main

    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    with pytest.raises(SystemExit) as refused:
        main(["--host", "0.0.0.0", "--path", str(tmp_path)])
    assert refused.value.code == 2
    assert auth.PASSWORD_ENV in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_sessions_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftloop.clickhouse_server import sessions as sessions_module

    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 3)
    kept = Sessions()
    for n in range(10):
        kept.use("default", f"s{n}", "", check=False)
    assert len(kept) == 3
    kept.use("default", "s9", "", check=True)
