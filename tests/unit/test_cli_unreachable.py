"""Every CLI command that needs a service says in one line which one is away, where, and what to do."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import errors, sql
from driftloop.cli.main import app
from driftloop.process import free_port


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Settings pointing at closed ports on this machine."""
    addresses = {
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
        "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "DRIFTLOOP_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
        "DRIFTLOOP_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in addresses.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "model.joblib").write_bytes(b"not really a model")
    monkeypatch.chdir(tmp_path)
    return addresses


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["models", "list"],
        ["models", "show", "churn"],
        ["models", "register", "churn", "model.joblib", "--create"],
        ["models", "register", "churn", "model.joblib"],
        ["models", "register", "churn", "s3://models/churn/model.joblib"],
        ["models", "promote", "churn", "1"],
        ["models", "rollback", "churn"],
        ["models", "history", "churn"],
        ["models", "history", "churn", "--at", "2026-01-01T00:00:00Z"],
    ],
)
def test_models_commands_name_the_registry_when_it_is_away(
    nothing_runs: dict[str, str], args: list[str]
) -> None:
    line = one_line_error(args)
    assert line.startswith("error: cannot reach the registry at " + nothing_runs["DRIFTLOOP_REGISTRY_URL"])
    assert "`driftloop up`" in line and "DRIFTLOOP_REGISTRY_URL" in line


@pytest.mark.parametrize("args", [["train", "churn"], ["train", "churn", "--wait", "--timeout", "5"]])
def test_train_names_kafka_when_it_is_away(nothing_runs: dict[str, str], args: list[str]) -> None:
    line = one_line_error(args)
    assert line.startswith(
        "error: cannot reach the Kafka broker at " + nothing_runs["DRIFTLOOP_KAFKA_BOOTSTRAP"]
    )
    assert "`driftloop up`" in line and "DRIFTLOOP_KAFKA_BOOTSTRAP" in line


def test_sql_names_clickhouse_when_it_is_away(nothing_runs: dict[str, str]) -> None:
    line = one_line_error(["sql", "SELECT 1"])
    assert nothing_runs["DRIFTLOOP_CLICKHOUSE_URL"] in line
    assert "`driftloop up`" in line and "DRIFTLOOP_CLICKHOUSE_URL" in line


def test_an_empty_result_is_a_header_and_zero_rows_not_ok() -> None:
    assert sql.render_table(["model", "version"], []).splitlines() == [
        "model  version",
        "-----  -------",
        "(0 rows)",
    ]
    assert sql.returns_rows("SELECT 1 WHERE 0") and sql.returns_rows("  with x as (select 1) select * from x")
    assert not sql.returns_rows("CREATE TABLE t (x UInt8) ENGINE = Memory")
    assert not sql.returns_rows("INSERT INTO t SELECT 1")


def test_doctests() -> None:
    assert doctest.testmod(errors).failed == 0
    assert doctest.testmod(sql).failed == 0
