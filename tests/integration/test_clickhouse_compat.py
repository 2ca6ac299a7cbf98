"""The embedded ClickHouse server against ClickHouse's own behaviour, with chDB in process as the oracle.

Each case sends a request the way a client does and checks what ClickHouse would answer: where the engine
decides (a result, an error code), the same SQL run in a fresh chDB connection says what is right; where the
HTTP layer decides (statuses, headers, sessions, settings that must not outlive their request), the expected
answer comes from the ClickHouse server's documented behaviour.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from driftloop.clickhouse_server import server_url, start_clickhouse_server
from driftloop.clickhouse_server.errors import ClickHouseError, http_status
from driftloop.process import free_port

pytestmark = pytest.mark.integration

#: Fifteen one-row blocks of 0.1 s: long enough for max_execution_time=1 to cut it between blocks.
LONG_QUERY = "SELECT sum(sleepEachRow(0.1)) FROM numbers(15) SETTINGS max_block_size = 1"


@pytest.fixture
def oracle() -> Iterator[Any]:
    """A fresh in-process chDB connection: what the engine answers with nothing set."""
    import chdb

    conn = chdb.connect(":memory:")
    try:
        yield conn
    finally:
        conn.close()


def oracle_answer(conn: Any, sql: str) -> tuple[int, bytes]:
    """(code, output) for ``sql`` run by chDB in process: code 0 and the TSV output, or the error code."""
    try:
        return 0, conn.query(sql, "TabSeparated").bytes()
    except Exception as exc:  # chDB raises its errors as RuntimeError subclasses
        return ClickHouseError.from_engine(exc).code, b""


@pytest.fixture
def http(clickhouse_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=clickhouse_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def table(http: httpx.Client) -> Iterator[str]:
    name = f"default.compat_{uuid4().hex[:12]}"
    http.post("/", content=f"CREATE TABLE {name} (v UInt32) ENGINE = MergeTree ORDER BY v").raise_for_status()
    try:
        yield name
    finally:
        http.post("/", content=f"DROP TABLE IF EXISTS {name}")


def code(response: httpx.Response) -> int:
    return int(response.headers.get("X-ClickHouse-Exception-Code", "0"))


# -- settings belong to their request ----------------------------------------------------------------------

SETTINGS_PROBE = "SELECT getSetting('max_threads'), getSetting('max_execution_time'), getSetting('readonly')"


def test_url_settings_never_reach_a_later_request(http: httpx.Client, oracle: Any) -> None:
    _, defaults = oracle_answer(oracle, SETTINGS_PROBE)
    for _ in range(8):  # sequential requests land on the same pooled engine session
        mine = http.post("/", params={"max_threads": "1", "max_execution_time": "7"}, content=SETTINGS_PROBE)
        assert mine.text.split("\t")[:2] == ["1", "7"]
        assert http.post("/", content=SETTINGS_PROBE).content == defaults


def test_a_readonly_request_does_not_make_later_writes_fail(
    clickhouse_server: Any, http: httpx.Client, oracle: Any, table: str
) -> None:
    refused = http.post("/", params={"readonly": "1"}, content=f"INSERT INTO {table} VALUES (1)")
    oracle.query("SET readonly = 1")
    assert code(refused) == oracle_answer(oracle, "CREATE TABLE x (a UInt8) ENGINE = Memory")[0] == 164
    other = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    try:
        for n in range(8):
            other.insert(table, [[n]], column_names=["v"])
        assert other.command(f"SELECT count() FROM {table}") == 8
    finally:
        other.close()
    assert http.post("/", content=SETTINGS_PROBE).text.rstrip("\n").split("\t")[2] == "0"


def test_a_timeout_set_by_one_client_does_not_cut_another_clients_query(
    clickhouse_server: Any, http: httpx.Client
) -> None:
    cut = http.post("/", params={"max_execution_time": "1"}, content=LONG_QUERY)
    assert (cut.status_code, code(cut)) == (408, 159)  # TIMEOUT_EXCEEDED, HTTP 408 as ClickHouse
    other = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    try:
        assert other.command(LONG_QUERY) == 0
    finally:
        other.close()


def test_a_set_that_fails_half_way_leaves_nothing_behind(http: httpx.Client, oracle: Any) -> None:
    _, defaults = oracle_answer(oracle, SETTINGS_PROBE)
    failed = http.post("/", params={"max_threads": "3", "max_block_size": "abc"}, content="SELECT 1")
    assert failed.status_code >= 400 and code(failed) != 0
    assert http.post("/", content=SETTINGS_PROBE).content == defaults


def test_a_set_statement_lasts_only_for_its_request_without_a_session(
    http: httpx.Client, oracle: Any
) -> None:
    _, defaults = oracle_answer(oracle, SETTINGS_PROBE)
    assert http.post("/", content="SET max_threads = 1, readonly = 1").status_code == 200
    assert http.post("/", content=SETTINGS_PROBE).content == defaults
    for create in (
        "CREATE TEMPORARY TABLE tmp_gone (a UInt8)",
        "CREATE OR REPLACE TEMPORARY TABLE tmp_gone (a UInt8)",
    ):
        assert http.post("/", content=create).status_code == 200
        assert code(http.post("/", content="SELECT * FROM tmp_gone")) == 60


def test_multi_statements_are_refused_like_clickhouse(http: httpx.Client) -> None:
    refused = http.post("/", content="SELECT 1; SET readonly = 1")
    assert (refused.status_code, code(refused)) == (400, 62)
    assert "Multi-statements are not allowed" in refused.text
    assert http.post("/", content="SELECT 1;").text == "1\n"  # a trailing semicolon is fine


# -- input() -----------------------------------------------------------------------------------------------


def test_insert_select_from_input_inserts_the_body(http: httpx.Client, table: str) -> None:
    body = f"INSERT INTO {table} SELECT v * 2 FROM input('v UInt32') FORMAT TSV\n1\n2\n3\n"
    answer = http.post("/", content=body)
    assert answer.status_code == 200, answer.text
    assert '"written_rows":"3"' in answer.headers["X-ClickHouse-Summary"]
    assert http.get(
        "/", params={"query": f"SELECT groupArray(v) FROM (SELECT v FROM {table} ORDER BY v)"}
    ).text == ("[2,4,6]\n")
    url_query = http.post(
        "/",
        params={"query": f"INSERT INTO {table} SELECT v + s FROM input('v UInt32, s UInt32') FORMAT CSV"},
        content=b"10,1\n20,2\n",
    )
    assert url_query.status_code == 200, url_query.text
    assert http.get("/", params={"query": f"SELECT sum(v) FROM {table}"}).text == "45\n"


def test_rows_no_select_would_read_are_refused_not_lost(http: httpx.Client, table: str) -> None:
    lost = http.post("/", content=f"INSERT INTO {table} SELECT 1 FORMAT TSV\n5\n")
    assert (lost.status_code, code(lost)) == (400, 36)
    assert "would be lost" in lost.text
    assert http.get("/", params={"query": f"SELECT count() FROM {table}"}).text == "0\n"


# -- headers, compression, status codes --------------------------------------------------------------------


def test_format_and_database_headers_are_honoured(http: httpx.Client) -> None:
    db = f"hdr_{uuid4().hex[:12]}"
    http.post("/", content=f"CREATE DATABASE {db}").raise_for_status()
    try:
        rows = http.post("/", content="SELECT 1 AS a", headers={"X-ClickHouse-Format": "JSONEachRow"})
        assert (rows.json(), rows.headers["X-ClickHouse-Format"]) == ({"a": 1}, "JSONEachRow")
        where = http.post("/", content="SELECT currentDatabase()", headers={"X-ClickHouse-Database": db})
        assert where.text == f"{db}\n"
        form = http.post(
            "/",
            data={"query": "SELECT currentDatabase() AS d"},
            files={"unused": ("unused.tsv", b"1\n")},
            params={"unused_structure": "a UInt8"},
            headers={"X-ClickHouse-Database": db, "X-ClickHouse-Format": "JSONEachRow"},
        )
        assert form.json() == {"d": db}
        url_wins = http.post(
            "/",
            params={"database": "system"},
            content="SELECT currentDatabase()",
            headers={"X-ClickHouse-Database": db},
        )
        assert url_wins.text == "system\n"
    finally:
        http.post("/", content=f"DROP DATABASE {db}")


@pytest.mark.parametrize("switch", ["compress", "decompress"])
def test_native_compression_is_refused_clearly(http: httpx.Client, switch: str) -> None:
    refused = http.post("/", params={switch: "1"}, content="SELECT 1")
    assert (refused.status_code, code(refused)) == (501, 48)
    assert "Accept-Encoding" in refused.text
    assert http.post("/", params={switch: "0"}, content="SELECT 1").text == "1\n"


@pytest.mark.parametrize(
    ("sql", "expected_code", "status"),
    [
        ("SELECT * FROM default.no_such_table", 60, 404),
        ("SELECT * FROM no_such_database.t", 81, 404),
        ("SELECT no_such_function(1)", 46, 404),
        ("SELEC 1", 62, 400),
        ("SELECT match('a', '(')", 427, 400),
        ("SELECT toUInt8('x')", 6, 400),
        ("SELECT throwIf(1)", 395, 500),
    ],
)
def test_error_codes_and_statuses_match_clickhouse(
    http: httpx.Client, oracle: Any, sql: str, expected_code: int, status: int
) -> None:
    answer = http.post("/", content=sql)
    assert code(answer) == oracle_answer(oracle, sql)[0] == expected_code
    assert answer.status_code == http_status(expected_code) == status
    assert answer.text.startswith(f"Code: {expected_code}. DB::Exception:")


@pytest.mark.parametrize(
    "fmt", ["TabSeparatedWithNamesAndTypes", "CSV", "JSONEachRow", "JSON", "Values", "Native"]
)
def test_output_formats_are_byte_identical_to_chdb(http: httpx.Client, oracle: Any, fmt: str) -> None:
    sql = "SELECT number, toString(number) AS s, [number, 1] AS a FROM numbers(5)"
    served = http.post(
        "/", params={"default_format": fmt, "output_format_json_quote_64bit_integers": "1"}, content=sql
    )
    oracle.query("SET output_format_json_quote_64bit_integers = 1")
    expected = oracle.query(sql, fmt).bytes()
    if fmt == "JSON":  # statistics differ run to run
        assert served.json()["data"] == json.loads(expected)["data"]
    else:
        assert served.content == expected


def test_unknown_role_is_refused(http: httpx.Client) -> None:
    refused = http.post("/", params={"role": "admin"}, content="SELECT 1")
    assert (refused.status_code, code(refused)) == (404, 511)


# -- sessions ----------------------------------------------------------------------------------------------


def test_session_check_on_an_unknown_session_fails(http: httpx.Client) -> None:
    session = uuid4().hex
    unknown = http.post("/", params={"session_id": session, "session_check": "1"}, content="SELECT 1")
    assert code(unknown) == 372  # SESSION_NOT_FOUND; ClickHouse's status table gives it 500
    assert unknown.status_code == http_status(372)
    assert http.post("/", params={"session_id": session}, content="SELECT 1").text == "1\n"
    known = http.post("/", params={"session_id": session, "session_check": "1"}, content="SELECT 1")
    assert known.text == "1\n"
    bad_timeout = http.post(
        "/", params={"session_id": session, "session_timeout": "99999"}, content="SELECT 1"
    )
    assert code(bad_timeout) == 374


def test_session_state_is_refused_not_silently_dropped(clickhouse_client: Any) -> None:
    """clickhouse-connect sends a session_id by default: what ClickHouse would keep in it is refused."""
    for statement in ("SET max_threads = 1", "USE system", "CREATE TEMPORARY TABLE t (a UInt8)"):
        with pytest.raises(DatabaseError) as refused:
            clickhouse_client.command(statement)
        assert "Code: 48" in str(refused.value) and "URL parameters" in str(refused.value)
    assert clickhouse_client.command("SELECT 1") == 1


# -- authentication ----------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_default_user_is_accepted_every_way_and_a_wrong_password_is_not(http: httpx.Client) -> None:
    for way in (
        {"headers": basic("default", "")},
        {"headers": {"X-ClickHouse-User": "default"}},
        {"params": {"user": "default"}},
        {},
    ):
        assert http.post("/", content="SELECT 1", **way).text == "1\n"  # type: ignore[arg-type]
    for way in (
        {"headers": basic("default", "guess")},
        {"headers": {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "guess"}},
        {"params": {"user": "admin"}},
    ):
        refused = http.post("/", content="SELECT 1", **way)  # type: ignore[arg-type]
        assert (refused.status_code, code(refused)) == (403, 516)


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server of its own that accepts user ``driftloop`` with password ``s3cret`` only."""
    root = tmp_path_factory.mktemp("guarded")
    host, port = "127.0.0.1", free_port()
    process = start_clickhouse_server(
        host, port, root / "data", root / "server.log", user="driftloop", password="s3cret"
    )
    try:
        yield host, port
    finally:
        process.stop()


def test_configured_password_is_checked(guarded_server: tuple[str, int]) -> None:
    host, port = guarded_server
    right = clickhouse_connect.get_client(host=host, port=port, username="driftloop", password="s3cret")
    assert right.command("SELECT currentUser() != ''") == 1
    right.close()
    with pytest.raises(DatabaseError) as wrong:
        clickhouse_connect.get_client(host=host, port=port, username="driftloop", password="guess")
    assert "AUTHENTICATION_FAILED" in str(wrong.value)
    with pytest.raises(DatabaseError):
        clickhouse_connect.get_client(host=host, port=port)  # default with no password is no longer accepted
    url = server_url(host, port)
    refused = httpx.post(
        url, content=b"SELECT 1", headers={"X-ClickHouse-User": "driftloop", "X-ClickHouse-Key": "x"}
    )
    assert (refused.status_code, refused.headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    accepted = httpx.post(url, params={"user": "driftloop", "password": "s3cret"}, content=b"SELECT 1")
    assert accepted.text == "1\n"
    assert httpx.get(f"{url}/ping").text == "Ok.\n"  # health checks need no credentials, as in ClickHouse


def test_password_is_not_on_the_command_line(guarded_server: tuple[str, int]) -> None:
    _, port = guarded_server
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"driftloop.clickhouse_server" in argv and str(port).encode() in argv:
            assert not any(b"s3cret" in arg for arg in argv)
            return
    pytest.fail("the guarded server's process was not found")
