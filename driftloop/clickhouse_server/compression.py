"""HTTP body codecs as ClickHouse speaks them: lz4 (frame), zstd, gzip, deflate and br when brotli is installed.

Request decoders accept several concatenated frames, because clickhouse-connect compresses each insert block
as its own lz4/zstd frame. Response encoders produce exactly one frame, because clickhouse-connect's streaming
lz4/zstd readers stop at the first frame's end.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import lz4.frame

try:  # the stdlib module from Python 3.14, the backport before
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]

try:
    import brotli  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    brotli = None


class UnsupportedEncoding(ValueError):
    """The request names a Content-Encoding this server cannot decode."""


#: What the decoders raise on a corrupt or truncated body.
DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError, RuntimeError, EOFError, zlib.error, zstd.ZstdError)


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> None: ...


class Encoder(Protocol):
    def compress(self, data: bytes | bytearray | memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> list[bytes]:
        return [data] if data else []

    def finish(self) -> None:
        return None


class _Frames:
    """Decode a sequence of frames with a decompressor that stops at each frame's end (``eof``/``unused_data``)."""

    def __init__(self, name: str, factory: Any) -> None:
        self._name = name
        self._factory = factory
        self._d = factory()
        self._in_frame = False

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        while data:
            self._in_frame = True
            chunk = self._d.decompress(data)
            if chunk:
                out.append(chunk)
            if not self._d.eof:
                break
            data = self._d.unused_data
            self._d = self._factory()
            self._in_frame = False
        return out

    def finish(self) -> None:
        if self._in_frame:
            raise ValueError(f"the {self._name} request body ends inside a compressed frame")


def _gzip() -> Any:
    return zlib.decompressobj(wbits=31)


def _deflate() -> Any:
    return zlib.decompressobj(wbits=15)


def _brotli() -> Any:
    if brotli is None:
        raise UnsupportedEncoding("br is not supported: the brotli package is not installed")
    return _BrotliStream()


class _BrotliStream:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self.unused_data = b""

    @property
    def eof(self) -> bool:
        return bool(self._d.is_finished())

    def decompress(self, data: bytes) -> bytes:
        return bytes(self._d.process(data))


_DECODERS: dict[str, Any] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": zstd.ZstdDecompressor,
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
}


def decoder(content_encoding: str | None) -> Decoder:
    """A streaming decoder for the request's Content-Encoding (identity when absent)."""
    name = (content_encoding or "").strip().lower()
    if name in ("", "identity"):
        return _Identity()
    factory = _DECODERS.get(name)
    if factory is None:
        raise UnsupportedEncoding(
            f"unknown Content-Encoding {content_encoding!r}; use one of {', '.join(_DECODERS)}"
        )
    return _Frames(name, factory)


class _Lz4:
    def __init__(self) -> None:
        self._c = lz4.frame.LZ4FrameCompressor()
        self._started = False

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        head = b""
        if not self._started:
            head, self._started = self._c.begin(), True
        return head + self._c.compress(data)

    def flush(self) -> bytes:
        head = b"" if self._started else self._c.begin()
        return head + self._c.flush()


class _Zstd:
    def __init__(self) -> None:
        self._c = zstd.ZstdCompressor(level=1)

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(self._c.compress(data, mode=zstd.ZstdCompressor.FLUSH_BLOCK))

    def flush(self) -> bytes:
        return bytes(self._c.flush())


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._c = zlib.compressobj(level=3, wbits=wbits)

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)

    def flush(self) -> bytes:
        return self._c.flush()


class _Brotli:
    def __init__(self) -> None:
        self._c = brotli.Compressor(quality=3)

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(self._c.process(bytes(data))) + bytes(self._c.flush())

    def flush(self) -> bytes:
        return bytes(self._c.finish())


def _encoders() -> dict[str, Any]:
    found: dict[str, Any] = {
        "lz4": _Lz4,
        "zstd": _Zstd,
        "gzip": lambda: _Zlib(31),
        "deflate": lambda: _Zlib(15),
    }
    if brotli is not None:
        found["br"] = _Brotli
    return found


_ENCODERS = _encoders()
#: Cheapest first: the server pays the compression, and lz4 costs least per byte.
PREFERENCE = tuple(_ENCODERS)


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The response encoding for an Accept-Encoding header: the cheapest one the client accepts, or None."""
    if not accept_encoding:
        return None
    accepted = set()
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip().lower()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        accepted.add(name.strip().lower())
    if "x-gzip" in accepted:
        accepted.add("gzip")
    for name in PREFERENCE:
        if name in accepted:
            return name
    return None


def encoder(name: str) -> Encoder:
    """A one-frame streaming encoder for a name returned by :func:`choose_encoding`."""
    return _ENCODERS[name]()  # type: ignore[no-any-return,unused-ignore]
