"""A request body as it arrives: decoded (gzip, deflate) and bounded while it is read.

``BodyReader`` takes the chunks the server receives and keeps at most ``limit`` decoded
bytes, so neither a long body nor a small compressed one that inflates ("a zip bomb")
costs more memory than the limit; it raises :class:`ApiError` (413, 415, 400) at the
first byte past what it accepts.
"""

from __future__ import annotations

import zlib

from .errors import ApiError

__all__ = ["ENCODINGS", "BodyReader", "body_too_large"]

# Content-Encoding -> zlib's window bits: gzip's header, or zlib's (HTTP's "deflate").
ENCODINGS = {
    b"gzip": 16 + zlib.MAX_WBITS,
    b"x-gzip": 16 + zlib.MAX_WBITS,
    b"deflate": zlib.MAX_WBITS,
}


def body_too_large(limit: int, *, decoded: bool = False) -> ApiError:
    """Return the 413 for a body past ``limit`` bytes (``decoded``: counted once inflated)."""
    after = " once decoded" if decoded else ""
    return ApiError(
        413,
        f"the request body is larger than {limit} bytes{after} (--max-body-mb); "
        "split the inputs over several requests",
        code="body_too_large",
    )


class BodyReader:
    """Collect a body's decoded bytes, refusing it past ``limit`` of them."""

    def __init__(self, content_encoding: bytes, limit: int) -> None:
        encoding = content_encoding.strip().lower()
        self.limit = limit
        self.buffer = bytearray()
        self.encoding = encoding.decode("latin-1")
        if encoding in (b"", b"identity"):
            self._inflate = None
        elif encoding in ENCODINGS:
            self._inflate = zlib.decompressobj(ENCODINGS[encoding])
        else:
            raise ApiError(
                415,
                f"Content-Encoding {self.encoding!r} is not supported; send the body plain, "
                "gzip or deflate",
                code="unsupported_encoding",
            )

    def feed(self, chunk: bytes) -> None:
        """Add one received chunk; raise a 413 once the decoded body is over the limit."""
        if self._inflate is None:
            data = chunk
        else:
            room = self.limit - len(self.buffer) + 1  # one byte more tells "over"
            try:
                data = self._inflate.decompress(chunk, room)
            except zlib.error as exc:
                raise self._corrupt(exc) from None
            if self._inflate.unconsumed_tail:  # more output is waiting: over the limit
                raise self.too_large()
        if len(self.buffer) + len(data) > self.limit:
            raise self.too_large()
        self.buffer += data

    def finish(self) -> bytearray:
        """Return the whole decoded body; raise a 400 for a compressed body cut short."""
        if self._inflate is not None:
            try:
                rest = self._inflate.flush()
            except zlib.error as exc:
                raise self._corrupt(exc) from None
            if len(self.buffer) + len(rest) > self.limit:
                raise self.too_large()
            self.buffer += rest
            if not self._inflate.eof:
                raise self._corrupt("the compressed stream ends early")
        return self.buffer

    def too_large(self) -> ApiError:
        """Return the 413 for a body past the limit."""
        return body_too_large(self.limit, decoded=self._inflate is not None)

    def _corrupt(self, reason: object) -> ApiError:
        return ApiError(
            400,
            f"the body is not valid {self.encoding} data ({reason}), as its Content-Encoding says",
            code="invalid_encoding",
        )
