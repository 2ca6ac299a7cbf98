"""The HTTP interface's pure parts: URL parameters, body codecs, error statuses."""

from __future__ import annotations

import gzip
import zlib

import lz4.frame
import pytest

from driftloop.clickhouse_server import compression
from driftloop.clickhouse_server.errors import ClickHouseError, http_status
from driftloop.clickhouse_server.protocol import external_tables, header_options, parse_options

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]


def test_url_parameters_split_into_query_params_settings_and_switches() -> None:
    opts = parse_options(
        [
            ("query", "SELECT {x:UInt8}"),
            ("database", "events"),
            ("param_x", "7"),
            ("max_threads", "2"),
            ("session_id", "abc"),
            ("wait_end_of_query", "1"),
            ("enable_http_compression", "0"),
            ("query_id", "q1"),
        ]
    )
    assert (opts.query, opts.database, opts.query_id) == ("SELECT {x:UInt8}", "events", "q1")
    assert opts.params == {"x": "7"}
    assert opts.settings == {"max_threads": "2"}
    assert opts.wait_end_of_query and not opts.compress_response


def test_defaults_match_the_clickhouse_server() -> None:
    opts = parse_options([])
    assert (opts.database, opts.default_format, opts.compress_response) == ("default", "TabSeparated", True)
    assert opts.query_id  # generated when the client sent none


def test_external_files_take_their_structure_and_format_from_the_url() -> None:
    files = [("ids", b"1\n"), ("m", b"")]
    fields = [
        ("ids_structure", "id UInt32"),
        ("ids_format", "CSV"),
        ("m_types", "UInt8,Map(String, Float64)"),
        ("max_threads", "2"),
        ("query", "SELECT 1"),
    ]
    tables, rest = external_tables(files, fields)
    assert [(t.name, t.structure, t.fmt) for t in tables] == [
        ("ids", "id UInt32", "CSV"),
        ("m", "_1 UInt8, _2 Map(String, Float64)", "TabSeparated"),
    ]
    assert rest == [("max_threads", "2"), ("query", "SELECT 1")]
    with pytest.raises(ValueError):
        external_tables([("x", b"")], [])


def _decode(encoding: str, body: bytes, step: int = 7) -> bytes:
    dec = compression.decoder(encoding)
    out = [part for i in range(0, len(body), step) for part in dec.feed(body[i : i + step])]
    dec.finish()
    return b"".join(out)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("lz4", lz4.frame.compress),
        ("zstd", zstd.compress),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", bytes),
    ],
)
def test_request_bodies_of_several_frames_decode_in_any_split(encoding: str, compress: object) -> None:
    blocks = [b"INSERT INTO t FORMAT Native\n", bytes(range(256)) * 50, b"tail"]
    body = b"".join(compress(block) for block in blocks)  # type: ignore[operator]
    assert _decode(encoding, body) == b"".join(blocks)


def test_truncated_body_and_unknown_encoding_are_errors() -> None:
    with pytest.raises(ValueError):
        _decode("lz4", lz4.frame.compress(b"x" * 1000)[:-5])
    with pytest.raises(compression.UnsupportedEncoding):
        compression.decoder("snappy")


@pytest.mark.parametrize("name", compression.PREFERENCE)
def test_response_is_one_frame(name: str) -> None:
    enc = compression.encoder(name)
    data = enc.compress(b"a" * 1000) + enc.compress(b"b" * 1000) + enc.flush()
    if name == "lz4":
        dec = lz4.frame.LZ4FrameDecompressor()
        assert dec.decompress(data) == b"a" * 1000 + b"b" * 1000 and dec.eof and not dec.unused_data
    else:
        assert _decode(name, data) == b"a" * 1000 + b"b" * 1000


def test_choose_encoding_prefers_the_cheapest_the_client_accepts() -> None:
    assert compression.choose_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert compression.choose_encoding("gzip, deflate, br;q=1") == "gzip"
    assert compression.choose_encoding("gzip;q=0, deflate") == "deflate"
    assert compression.choose_encoding("identity") is None
    assert compression.choose_encoding(None) is None


def test_error_statuses_follow_the_clickhouse_server() -> None:
    assert (http_status(62), http_status(60), http_status(81), http_status(395)) == (400, 404, 404, 500)
    engine_text = "Streaming insert finish failed: Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"
    err = ClickHouseError.from_engine(RuntimeError(engine_text))
    assert (err.code, err.http_status) == (27, 400)
    assert err.body("26.9").startswith(b"Code: 27. DB::Exception: Cannot parse input.")
    assert err.body("26.9").endswith(b"(version 26.9)\n")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (159, 408),  # TIMEOUT_EXCEEDED
        (427, 400),  # CANNOT_COMPILE_REGEXP
        (516, 403),  # AUTHENTICATION_FAILED
        (194, 401),  # REQUIRED_PASSWORD
        (60, 404),  # UNKNOWN_TABLE
        (81, 404),  # UNKNOWN_DATABASE
        (48, 501),  # NOT_IMPLEMENTED
        (76, 503),  # CANNOT_OPEN_FILE
        (779, 415),  # UNSUPPORTED_MEDIA_TYPE
        (164, 500),  # READONLY: not in ClickHouse's table
        (372, 500),  # SESSION_NOT_FOUND: not in ClickHouse's table either
        (374, 500),  # INVALID_SESSION_TIMEOUT
    ],
)
def test_status_table_is_clickhouses_exception_code_to_http_status(code: int, status: int) -> None:
    assert http_status(code) == status


def test_headers_give_database_and_format_unless_the_url_does() -> None:
    headers = {"X-ClickHouse-Database": "db", "X-ClickHouse-Format": "JSONEachRow"}
    from_headers = parse_options(header_options(headers))
    assert (from_headers.database, from_headers.default_format) == ("db", "JSONEachRow")
    url_wins = parse_options([*header_options(headers), ("database", "other"), ("default_format", "CSV")])
    assert (url_wins.database, url_wins.default_format) == ("other", "CSV")


def test_session_and_compression_switches_are_read_not_taken_for_settings() -> None:
    opts = parse_options(
        [("session_id", "s"), ("session_check", "1"), ("session_timeout", "5"), ("compress", "1"), ("x", "1")]
    )
    assert (opts.session_id, opts.session_check, opts.session_timeout) == ("s", True, "5")
    assert opts.native_compression
    assert opts.settings == {"x": "1"}
    assert not parse_options([("compress", "0"), ("decompress", "0")]).native_compression


def test_error_block_after_rows_is_what_clickhouse_connect_parses() -> None:
    from clickhouse_connect.driver.transform import extract_exception_with_tag

    from driftloop.clickhouse_server.http import exception_block

    message = b"Code: 395. DB::Exception: boom. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 26.9)\n"
    block = exception_block(message, "a1b2c3")
    assert extract_exception_with_tag(b"\x01\x02rows" + block, "a1b2c3") == message.decode().rstrip("\n")
