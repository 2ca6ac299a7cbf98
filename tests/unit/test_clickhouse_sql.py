"""Routing a request body: where an INSERT's inline rows begin, and which format a statement answers in."""

from __future__ import annotations

import pytest

from driftloop.clickhouse_server.sql import (
    NeedMore,
    first_keyword,
    input_calls,
    output_format,
    session_change,
    split_insert,
    statement_count,
)


def test_insert_format_native_splits_at_the_first_line_break() -> None:
    body = b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n\x09\x01binary"  # 9 columns: a tab starts the data
    insert = split_insert(body, final=False)
    assert insert is not None
    assert insert.statement == "INSERT INTO db.t (`a`, `b`)"
    assert insert.fmt == "Native"
    assert body[insert.offset :] == b"\x09\x01binary"


def test_url_query_joined_to_body_with_a_newline() -> None:
    body = b"INSERT INTO t FORMAT TabSeparated  \r\n1\tx\n"
    insert = split_insert(body, final=True)
    assert insert is not None and body[insert.offset :] == b"1\tx\n"


def test_values_rows_start_after_the_keyword() -> None:
    body = b"insert into t (a, s) values (1, 'FORMAT x'), (2, 'b')"
    insert = split_insert(body, final=True)
    assert insert is not None
    assert (insert.statement, insert.fmt) == ("insert into t (a, s)", "Values")
    assert body[insert.offset :] == b" (1, 'FORMAT x'), (2, 'b')"


def test_keywords_inside_quotes_comments_and_settings_are_not_boundaries() -> None:
    body = b"INSERT /* FORMAT CSV */ INTO `format` ('values') SETTINGS async_insert = 0 FORMAT CSV\n1\n"
    insert = split_insert(body, final=True)
    assert insert is not None
    assert insert.fmt == "CSV"
    assert insert.statement.endswith("SETTINGS async_insert = 0")


@pytest.mark.parametrize(
    "body",
    [
        b"SELECT 1",
        b"INSERT INTO t SELECT * FROM s",
        b"INSERT INTO t (a) WITH 1 AS x SELECT x",
        b"INSERT INTO t SELECT * FROM values('a UInt8', 1)",
        b"INSERT INTO t FROM INFILE 'rows.csv' FORMAT CSV",
        b"",
    ],
)
def test_statements_without_inline_rows_are_plain_sql(body: bytes) -> None:
    assert split_insert(body, final=True) is None


@pytest.mark.parametrize(
    "partial", [b"INSERT INTO t FORMAT Nat", b"INSERT INTO t (a, b", b"INSERT INTO 't", b"  "]
)
def test_partial_statement_asks_for_more(partial: bytes) -> None:
    with pytest.raises(NeedMore):
        split_insert(partial, final=False)


def test_output_format_is_the_top_level_clause() -> None:
    assert output_format("SELECT * FROM t FORMAT JSONEachRow") == "JSONEachRow"
    assert output_format("SELECT 'FORMAT CSV' -- FORMAT TSV\n") is None
    assert output_format("SELECT * FROM (SELECT 1 FORMAT CSV)") is None


def test_first_keyword() -> None:
    assert first_keyword("  -- note\n select 1") == "SELECT"
    assert first_keyword(b"(SELECT 1)") == "SELECT"
    assert first_keyword("") == ""


def test_insert_select_with_format_has_rows_for_input() -> None:
    body = b"INSERT INTO t SELECT v * 2 FROM input('v UInt32') FORMAT TSV\n1\n2\n"
    insert = split_insert(body, final=True)
    assert insert is not None and insert.select
    assert (insert.statement, insert.fmt) == ("INSERT INTO t SELECT v * 2 FROM input('v UInt32')", "TSV")
    assert body[insert.offset :] == b"1\n2\n"
    assert not split_insert(b"INSERT INTO t FORMAT TSV\n1\n", final=True).select  # type: ignore[union-attr]


def test_input_calls_find_the_structure_literal() -> None:
    sql = r"INSERT INTO t SELECT * FROM input('a Enum(\'x\' = 1), m Map(String, Float64)') AS i"
    calls, other = input_calls(sql)
    assert not other
    assert [c.structure for c in calls] == ["a Enum('x' = 1), m Map(String, Float64)"]
    assert sql[calls[0].start : calls[0].end].startswith("input(") and sql[calls[0].end :] == " AS i"
    assert input_calls("SELECT * FROM input()") == ([], True)
    assert input_calls("SELECT * FROM db.input WHERE input = 1") == ([], False)
    assert input_calls("SELECT 'input(x)' -- input(y)") == ([], False)


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        ("SELECT 1; ", 1),
        ("SELECT ';'", 1),
        ("SELECT 1; SET readonly = 1", 2),
        ("", 0),
    ],
)
def test_statement_count(sql: str, count: int) -> None:
    assert statement_count(sql) == count


@pytest.mark.parametrize(
    ("sql", "change"),
    [
        ("SET max_threads = 1", "SET"),
        ("  -- why\n use system", "USE"),
        ("create temporary table t (a UInt8)", "CREATE TEMPORARY"),
        ("CREATE OR REPLACE TEMPORARY TABLE t (a UInt8)", "CREATE TEMPORARY"),
        ("CREATE TABLE temporary (a UInt8) ENGINE = Memory", ""),
        ("CREATE TABLE t (a UInt8) ENGINE = Memory", ""),
        ("SELECT 'SET'", ""),
        ("", ""),
    ],
)
def test_session_change(sql: str, change: str) -> None:
    assert session_change(sql) == change
