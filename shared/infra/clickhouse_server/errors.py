"""ClickHouse errors as the HTTP interface reports them: the message text, its code and an HTTP status."""

from __future__ import annotations

import re

# Error codes (from ``errorCodeToName``) grouped by the HTTP status the ClickHouse server answers with.
_STATUS_BY_CODE: dict[int, int] = {
    194: 401,  # REQUIRED_PASSWORD
    **dict.fromkeys((192, 193, 497, 516), 403),  # UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, AUTHENTICATION_FAILED
    **dict.fromkeys(
        (
            6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321, 374, 376, 441,
            675, 676,
        ),
        400,
    ),  # CANNOT_PARSE_*, SYNTAX_ERROR, TYPE_MISMATCH, BAD_ARGUMENTS, INCORRECT_DATA, ...
    **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511), 404),  # UNKNOWN_*
    229: 413,  # QUERY_IS_TOO_LARGE
    381: 411,  # HTTP_LENGTH_REQUIRED
    48: 501,  # NOT_IMPLEMENTED
    209: 503,  # SOCKET_TIMEOUT
}  # fmt: skip

UNKNOWN_EXCEPTION = 1002
BAD_ARGUMENTS = 36
SYNTAX_ERROR = 62
CANNOT_DECOMPRESS = 271
UNKNOWN_FORMAT = 73
READONLY = 164

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
