"""The embedded ClickHouse server as its users see it: clickhouse-connect with default settings, and curl."""

from __future__ import annotations

import datetime as dt
import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import numpy as np
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from driftloop.clickhouse_server import server_url, start_clickhouse_server
from driftloop.process import free_port

pytestmark = pytest.mark.integration

EVENTS_DDL = """
CREATE TABLE events (
    id UInt64,
    model LowCardinality(String),
    score Float64,
    ts DateTime64(3, 'UTC'),
    features Map(String, Float64)
) ENGINE = MergeTree ORDER BY id
"""


@pytest.fixture
def http(clickhouse_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=clickhouse_server.url, timeout=30) as client:
        yield client


def test_ping_answers_ok(clickhouse_server: Any, clickhouse_client: Any, http: httpx.Client) -> None:
    assert clickhouse_client.ping()
    assert http.get("/ping").text == "Ok.\n"
    assert http.get("/").text == "Ok.\n"


def test_default_client_uses_compression(clickhouse_client: Any) -> None:
    assert clickhouse_client.compression  # the defaults negotiate lz4 both ways
    assert clickhouse_client.server_version.startswith(("25.", "26.", "27."))


def test_table_with_low_cardinality_map_and_datetime64_round_trips(clickhouse_client: Any) -> None:
    clickhouse_client.command(EVENTS_DDL)
    ts = dt.datetime(2024, 5, 1, 12, 30, 0, 125000)
    rows = [
        [1, "churn", 0.25, ts, {"age": 31.0, "tenure": 2.5}],
        [2, "fraud", 0.75, ts + dt.timedelta(seconds=1), {}],
    ]
    summary = clickhouse_client.insert(
        "events", rows, column_names=["id", "model", "score", "ts", "features"]
    )
    assert summary.written_rows == 2

    result = clickhouse_client.query("SELECT id, model, score, ts, features FROM events ORDER BY id")
    assert result.result_rows == [tuple(r) for r in rows]
    types = dict(
        clickhouse_client.query(
            "SELECT name, type FROM system.columns WHERE table = 'events' AND database = currentDatabase()"
        ).result_rows
    )
    assert types["model"] == "LowCardinality(String)"
    assert types["features"] == "Map(String, Float64)"
    assert types["ts"] == "DateTime64(3, 'UTC')"


def test_insert_df_and_query_df_round_trip(clickhouse_client: Any) -> None:
    clickhouse_client.command(EVENTS_DDL)
    df = pd.DataFrame(
        {
            "id": np.arange(1000, dtype=np.uint64),
            "model": ["churn", "fraud"] * 500,
            "score": np.linspace(0, 1, 1000),
            "ts": pd.date_range("2024-01-01", periods=1000, freq="s"),
            "features": [{"x": float(i)} for i in range(1000)],
        }
    )
    clickhouse_client.insert_df("events", df)

    back = clickhouse_client.query_df("SELECT * FROM events ORDER BY id")
    assert len(back) == 1000
    assert back["score"].tolist() == pytest.approx(df["score"].tolist())
    assert back["model"].tolist() == df["model"].tolist()
    assert back["features"].iloc[7] == {"x": 7.0}
    assert back["ts"].iloc[3] == pd.Timestamp("2024-01-01 00:00:03")


def test_server_side_and_client_side_parameters(clickhouse_client: Any) -> None:
    server_side = clickhouse_client.query(
        "SELECT {x:UInt32} + 1 AS y, {name:String} AS name", parameters={"x": 41, "name": "it's"}
    )
    assert server_side.result_rows == [(42, "it's")]
    client_side = clickhouse_client.query("SELECT %(x)s * 2, %(s)s", parameters={"x": 21, "s": "a'b"})
    assert client_side.result_rows == [(42, "a'b")]


def test_large_parameters_travel_as_a_form(clickhouse_client: Any) -> None:
    ids = list(range(5_000))  # too long for the URL: clickhouse-connect switches to multipart/form-data
    result = clickhouse_client.query(
        "SELECT length({ids:Array(UInt32)}), arraySum({ids:Array(UInt32)})", parameters={"ids": ids}
    )
    assert result.result_rows == [(5_000, sum(ids))]


def test_external_data_is_a_temporary_table(clickhouse_client: Any) -> None:
    from clickhouse_connect.driver.external import ExternalData

    ids = ExternalData(
        file_name="ids.csv", data=b"1,a\n2,b\n40,c\n", fmt="CSV", structure=["id UInt32", "tag String"]
    )
    result = clickhouse_client.query("SELECT sum(id), groupArray(tag) FROM ids", external_data=ids)
    assert result.result_rows == [(43, ["a", "b", "c"])]
    with pytest.raises(DatabaseError):  # gone after the query
        clickhouse_client.query("SELECT * FROM ids")


def test_million_row_insert_reads_back(clickhouse_client: Any) -> None:
    clickhouse_client.command(
        "CREATE TABLE big (id UInt64, v Float64, tag LowCardinality(String)) ENGINE = MergeTree ORDER BY id"
    )
    n = 1_000_000
    ids = np.arange(n, dtype=np.uint64)
    values = np.full(n, 0.5)
    tags = ["a", "b", "c", "d"] * (n // 4)
    summary = clickhouse_client.insert(
        "big", [ids, values, tags], column_names=["id", "v", "tag"], column_oriented=True
    )
    assert summary.written_rows == n
    count, total, half = clickhouse_client.query("SELECT count(), sum(id), sum(v) FROM big").result_rows[0]
    assert (count, total, half) == (n, n * (n - 1) // 2, n * 0.5)


def test_large_result_streams_in_blocks(clickhouse_client: Any) -> None:
    seen = 0
    with clickhouse_client.query_row_block_stream("SELECT number FROM numbers(2000000)") as stream:
        for block in stream:
            seen += len(block)
    assert seen == 2_000_000


def test_error_after_rows_were_sent_reaches_the_client(clickhouse_client: Any) -> None:
    sql = "SELECT throwIf(number = 1500000) FROM numbers(3000000)"  # fails after the first blocks went out
    with pytest.raises(Exception) as failed, clickhouse_client.query_row_block_stream(sql) as stream:
        for _ in stream:
            pass
    assert "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" in str(failed.value)
    assert clickhouse_client.query("SELECT 1").result_rows == [(1,)]  # and the client still works


def test_wrong_query_raises_with_clickhouse_message_and_code(clickhouse_client: Any) -> None:
    with pytest.raises(DatabaseError) as syntax:
        clickhouse_client.query("SELEC 1")
    assert syntax.value.code == 62
    assert "Syntax error" in str(syntax.value)
    with pytest.raises(DatabaseError) as missing:
        clickhouse_client.query("SELECT * FROM no_such_table")
    assert missing.value.code == 60
    assert "UNKNOWN_TABLE" in str(missing.value)


def test_errors_carry_exception_code_header_and_status(http: httpx.Client) -> None:
    syntax = http.get("/", params={"query": "SELEC 1"})
    assert syntax.status_code == 400
    assert syntax.headers["X-ClickHouse-Exception-Code"] == "62"
    assert syntax.text.startswith("Code: 62. DB::Exception: Syntax error")
    missing = http.post("/", content=b"SELECT * FROM default.no_such_table")
    assert missing.status_code == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"
    corrupt = http.post("/", content=b"not zstd at all", headers={"Content-Encoding": "zstd"})
    assert (corrupt.status_code, corrupt.headers["X-ClickHouse-Exception-Code"]) == (500, "271")
    failing = http.get("/", params={"query": "SELECT throwIf(1)"})
    assert failing.status_code >= 400
    assert "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" in failing.text


def test_two_clients_insert_and_query_at_once(clickhouse_server: Any, clickhouse_client: Any) -> None:
    database = clickhouse_client.database
    clickhouse_client.command("CREATE TABLE hits (worker UInt8, n UInt32) ENGINE = MergeTree ORDER BY worker")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            client = clickhouse_connect.get_client(
                host=clickhouse_server.host, port=clickhouse_server.port, database=database
            )
            for batch in range(20):
                client.insert(
                    "hits", [[worker, batch * 100 + i] for i in range(100)], column_names=["worker", "n"]
                )
                mine = client.query(
                    "SELECT count() FROM hits WHERE worker = {w:UInt8}", parameters={"w": worker}
                )
                assert mine.result_rows[0][0] == (batch + 1) * 100
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = clickhouse_client.query("SELECT worker, count() FROM hits GROUP BY worker ORDER BY worker")
    assert rows.result_rows == [(1, 2000), (2, 2000)]


def test_curl_style_queries(http: httpx.Client) -> None:
    in_url = http.get("/", params={"query": "SELECT 1"})
    assert (in_url.status_code, in_url.text) == (200, "1\n")
    in_body = http.post("/", content=b"SELECT number, toString(number) FROM numbers(3)")
    assert in_body.text == "0\t0\n1\t1\n2\t2\n"
    assert in_body.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert "X-ClickHouse-Query-Id" in in_body.headers
    assert "X-ClickHouse-Summary" in in_body.headers
    split = http.post("/", params={"query": "SELECT number FROM numbers(5)"}, content=b"WHERE number > 2")
    assert split.text == "3\n4\n"
    gzipped = http.post("/", content=gzip.compress(b"SELECT 'zipped'"), headers={"Content-Encoding": "gzip"})
    assert gzipped.text == "zipped\n"
    json_rows = http.get("/", params={"query": "SELECT 1 AS a, 'x' AS b", "default_format": "JSONEachRow"})
    assert json_rows.json() == {"a": 1, "b": "x"}
    assert http.get("/", params={"query": "SELECT {n:UInt8} * 2", "param_n": "21"}).text == "42\n"
    head = http.head("/", params={"query": "SELECT 1"})
    assert head.status_code == 200 and head.headers["X-ClickHouse-Format"] == "TabSeparated"


def test_get_is_read_only_like_the_server(http: httpx.Client) -> None:
    refused = http.get("/", params={"query": "CREATE TABLE default.never (a UInt8) ENGINE = Memory"})
    assert refused.headers["X-ClickHouse-Exception-Code"] == "164"
    assert "use method POST" in refused.text
    assert http.get("/", params={"query": "EXISTS TABLE default.never"}).text == "0\n"


def test_curl_style_insert_with_chunked_and_compressed_bodies(http: httpx.Client) -> None:
    db = f"curl_{threading.get_ident()}"
    http.post("/", content=f"CREATE DATABASE IF NOT EXISTS {db}".encode()).raise_for_status()
    try:
        http.post(
            "/",
            params={"database": db},
            content=b"CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a",
        ).raise_for_status()

        def chunked() -> Iterator[bytes]:  # a generator body goes out with Transfer-Encoding: chunked
            yield b"INSERT INTO t FORMAT TabSeparated\n1\tone\n"
            yield b"2\ttw"
            yield b"o\n3\tthree\n"

        http.post("/", params={"database": db}, content=chunked()).raise_for_status()
        http.post(
            "/",
            params={"database": db, "query": "INSERT INTO t FORMAT JSONEachRow"},
            content=gzip.compress(b'{"a": 4, "s": "four"}\n'),
            headers={"Content-Encoding": "gzip"},
        ).raise_for_status()
        http.post(
            "/", params={"database": db}, content=b"INSERT INTO t VALUES (5, 'five')"
        ).raise_for_status()
        rows = http.get(
            "/",
            params={"database": db, "query": "SELECT a, s FROM t ORDER BY a"},
            headers={"Accept-Encoding": "gzip"},
        )
        assert rows.headers.get("Content-Encoding") == "gzip"
        assert rows.text == "1\tone\n2\ttwo\n3\tthree\n4\tfour\n5\tfive\n"
    finally:
        http.post("/", content=f"DROP DATABASE IF EXISTS {db}".encode())


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_each_compression_clickhouse_connect_offers(clickhouse_server: Any, compress: Any) -> None:
    client = clickhouse_connect.get_client(
        host=clickhouse_server.host, port=clickhouse_server.port, compress=compress
    )
    table = f"default.comp_{compress or 'none'}_{threading.get_ident()}"
    client.command(f"CREATE TABLE {table} (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    try:
        client.insert(table, [[i, f"v{i}"] for i in range(50_000)], column_names=["k", "v"])
        assert client.query(f"SELECT count(), max(v) FROM {table}").result_rows == [(50_000, "v9999")]
    finally:
        client.command(f"DROP TABLE {table}")
        client.close()


def test_rows_survive_a_restart(tmp_path: Path) -> None:
    host, port = "127.0.0.1", free_port()
    data, log = tmp_path / "data", tmp_path / "server.log"
    server = start_clickhouse_server(host, port, data, log)
    try:
        client = clickhouse_connect.get_client(host=host, port=port)
        client.command(
            "CREATE TABLE kept (id UInt32, name LowCardinality(String)) ENGINE = MergeTree ORDER BY id"
        )
        client.insert("kept", [[i, f"n{i % 3}"] for i in range(10_000)], column_names=["id", "name"])
        client.close()
    finally:
        server.stop()
    assert server.proc.returncode == 0  # SIGTERM is a clean shutdown

    server = start_clickhouse_server(host, port, data, log)
    try:
        client = clickhouse_connect.get_client(host=host, port=port)
        assert client.query("SELECT count(), uniqExact(name) FROM kept").result_rows == [(10_000, 3)]
        client.close()
        assert httpx.get(f"{server_url(host, port)}/ping").text == "Ok.\n"
    finally:
        server.stop()


def test_a_slow_query_does_not_hold_up_other_statements(
    clickhouse_server: Any, clickhouse_client: Any
) -> None:
    """Like a real server, statements from other clients run beside a long one instead of queueing behind it."""
    import time

    clickhouse_client.command("CREATE TABLE quick (n UInt32) ENGINE = MergeTree ORDER BY n")
    finished: dict[str, float] = {}

    def slow() -> None:
        client = clickhouse_connect.get_client(
            host=clickhouse_server.host, port=clickhouse_server.port, database=clickhouse_client.database
        )
        client.command("SELECT sleep(3)")
        finished["slow"] = time.monotonic()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the slow query is running
    clickhouse_client.insert("quick", [[1], [2], [3]], column_names=["n"])
    assert (
        clickhouse_client.command("SELECT sum(n) FROM quick WHERE n > {m:UInt32}", parameters={"m": 1}) == 5
    )
    finished["quick"] = time.monotonic()
    thread.join()
    assert finished["quick"] < finished["slow"]


def test_concurrent_parameterised_queries_keep_their_own_values(
    clickhouse_server: Any, clickhouse_client: Any
) -> None:
    wrong: list[tuple[int, Any]] = []

    def ask(value: int) -> None:
        client = clickhouse_connect.get_client(
            host=clickhouse_server.host, port=clickhouse_server.port, database=clickhouse_client.database
        )
        for _ in range(100):
            got = client.command("SELECT {v:UInt32} * 2", parameters={"v": value})
            if got != value * 2:
                wrong.append((value, got))
        client.close()

    threads = [threading.Thread(target=ask, args=(v,)) for v in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_unread_result_does_not_hold_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client may read one result only after its other queries return: the engine must not wait for it."""
    import asyncio

    from driftloop.clickhouse_server import engine as engine_module
    from driftloop.clickhouse_server.engine import Engine, QueryContext

    monkeypatch.setattr(engine_module, "STREAM_BUFFER_BYTES", 100_000)  # most of the result goes to disk

    async def scenario() -> tuple[bytes, int]:
        engine = Engine(tmp_path / "data")
        await engine.open()
        try:
            stream = engine.stream(QueryContext(), "SELECT number FROM numbers(3000000)", "TSV")
            other, _ = await asyncio.wait_for(engine.execute(QueryContext(), "SELECT 42", "TSV"), 120)
            lines = 0
            async for chunk in stream.chunks():
                lines += chunk.count(b"\n")
            return other, lines
        finally:
            await engine.close()

    assert asyncio.run(scenario()) == (b"42\n", 3_000_000)


def test_large_insert_streams_into_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the buffer size rows flow into chDB while they arrive; a bad row still fails the whole INSERT."""
    import asyncio

    from driftloop.clickhouse_server import engine as engine_module
    from driftloop.clickhouse_server.engine import Engine, QueryContext
    from driftloop.clickhouse_server.errors import ClickHouseError

    monkeypatch.setattr(engine_module, "INSERT_BUFFER_BYTES", 1_000)
    monkeypatch.setattr(engine_module, "INSERT_INBOX_BYTES", 2_000)

    async def rows(n: int, bad_at: int | None = None) -> Any:
        for start in range(0, n, 100):
            yield b"".join(b"x\n" if i == bad_at else b"%d\n" % i for i in range(start, min(n, start + 100)))
            await asyncio.sleep(0)

    async def scenario() -> tuple[int, bytes, int]:
        engine = Engine(tmp_path / "data")
        await engine.open()
        ctx = QueryContext()
        try:
            await engine.execute(ctx, "CREATE TABLE s (n UInt32) ENGINE = MergeTree ORDER BY n", "TSV")
            summary = await engine.insert(ctx, "INSERT INTO s", "TSV", rows(50_000))
            with pytest.raises(ClickHouseError) as bad:
                await engine.insert(ctx, "INSERT INTO s", "TSV", rows(50_000, bad_at=30_000))
            body, _ = await engine.execute(ctx, "SELECT count(), sum(n) FROM s", "TSV")
            return summary.written_rows, body, bad.value.code
        finally:
            await engine.close()

    written, body, code = asyncio.run(scenario())
    assert written == 50_000
    assert body == b"50000\t1249975000\n"
    assert code in (6, 27, 72)  # a parse error, not a hang or a crash


def test_stop_signal_lets_a_running_insert_finish(tmp_path: Path) -> None:
    """SIGTERM while an INSERT body is still arriving: the INSERT completes and its rows survive the restart."""
    import signal
    import time

    host, port = "127.0.0.1", free_port()
    data, log = tmp_path / "data", tmp_path / "server.log"
    server = start_clickhouse_server(host, port, data, log)
    url = server_url(host, port)
    try:
        httpx.post(url, content=b"CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n").raise_for_status()

        def body() -> Iterator[bytes]:
            yield b"INSERT INTO t FORMAT TSV\n" + b"".join(b"%d\n" % i for i in range(50_000))
            server.proc.send_signal(signal.SIGTERM)  # the server stops while this request is in flight
            time.sleep(0.5)
            yield b"".join(b"%d\n" % i for i in range(50_000, 100_000))

        response = httpx.post(url, content=body(), timeout=60)
        assert response.status_code == 200
        assert server.proc.wait(timeout=60) == 0
    finally:
        server.stop()
    server = start_clickhouse_server(host, port, data, log)
    try:
        assert (
            httpx.get(url, params={"query": "SELECT count(), sum(n) FROM t"}).text == "100000\t4999950000\n"
        )
    finally:
        server.stop()


def test_benchmark_runs_against_a_given_server(clickhouse_server: Any, tmp_path: Path) -> None:
    from driftloop.bench.clickhouse import run
    from shared.settings import Settings

    settings = Settings(clickhouse_url=clickhouse_server.url, data_dir=tmp_path)
    figures = run(settings, n=2_000, queries=8)
    assert figures["insert_rows"] == 2_000
    assert all(value > 0 for value in figures.values())
