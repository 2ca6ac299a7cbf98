"""ClickHouse errors as the HTTP interface reports them: the message text, its code and an HTTP status."""

from __future__ import annotations

import re

# The ClickHouse server's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), code by
# code; every other code answers 500.
_STATUS_BY_CODE: dict[int, int] = {
    194: 401,  # REQUIRED_PASSWORD
    # UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED, SET_NON_GRANTED_ROLE, ACCESS_DENIED
    **dict.fromkeys((192, 193, 516, 512, 497), 403),
    # BAD_ARGUMENTS, CANNOT_COMPILE_REGEXP, CANNOT_PARSE_{TEXT, ESCAPE_SEQUENCE, QUOTED_STRING, DATE, DATETIME,
    # NUMBER, DOMAIN_VALUE_FROM_STRING, IPV4, IPV6, INPUT_ASSERTION_FAILED, UUID}, DUPLICATE_COLUMN,
    # ILLEGAL_COLUMN, UNKNOWN_ELEMENT_IN_AST, UNKNOWN_TYPE_OF_AST_NODE, THERE_IS_NO_COLUMN, TOO_DEEP_AST,
    # TOO_BIG_AST, UNEXPECTED_AST_STRUCTURE, SYNTAX_ERROR, INCORRECT_DATA, TYPE_MISMATCH,
    # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    **dict.fromkeys(
        (
            36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117,
            53, 321,
        ),
        400,
    ),
    # UNKNOWN_{TABLE, FUNCTION, IDENTIFIER, TYPE, STORAGE, DATABASE, SETTING, DIRECTION_OF_SORTING,
    # AGGREGATE_FUNCTION, FORMAT, DATABASE_ENGINE, TYPE_OF_QUERY, ROLE}
    **dict.fromkeys((60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511), 404),
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    **dict.fromkeys((209, 76, 439), 503),  # SOCKET_TIMEOUT, CANNOT_OPEN_FILE, CANNOT_SCHEDULE_TASK
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
}  # fmt: skip

UNKNOWN_EXCEPTION = 1002
BAD_ARGUMENTS = 36
SYNTAX_ERROR = 62
CANNOT_DECOMPRESS = 271
UNKNOWN_FORMAT = 73
READONLY = 164
NOT_IMPLEMENTED = 48
QUERY_IS_TOO_LARGE = 229
SESSION_NOT_FOUND = 372
INVALID_SESSION_TIMEOUT = 374
AUTHENTICATION_FAILED = 516
UNKNOWN_ROLE = 511

_CODE = re.compile(r"Code: (\d+)\. ")


class ClickHouseError(Exception):
    """A query failed; ``str()`` is the text the ClickHouse server would send."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def body(self, version: str) -> bytes:
        text = (
            self.message
            if self.message.startswith("Code: ")
            else f"Code: {self.code}. DB::Exception: {self.message}"
        )
        if "(version " not in text:
            text = f"{text} (version {version})"
        return (text.rstrip("\n") + "\n").encode()

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """Turn chDB's exception (its text holds ``Code: N. DB::Exception: ...`` after a prefix) into ours."""
        text = str(exc)
        match = _CODE.search(text)
        if match is None:
            return cls(UNKNOWN_EXCEPTION, f"Code: {UNKNOWN_EXCEPTION}. DB::Exception: {text}")
        return cls(int(match.group(1)), text[match.start() :])


def http_status(code: int) -> int:
    """The HTTP status the ClickHouse server uses for an exception code (500 for the rest)."""
    return _STATUS_BY_CODE.get(code, 500)
