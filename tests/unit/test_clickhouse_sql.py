"""Routing a request body: where an INSERT's inline rows begin, and which format a statement answers in."""

from __future__ import annotations

import pytest

from shared.infra.clickhouse_server.sql import NeedMore, first_keyword, output_format, split_insert


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
    [b"SELECT 1", b"INSERT INTO t SELECT * FROM s", b"INSERT INTO t (a) WITH 1 AS x SELECT x", b""],
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
