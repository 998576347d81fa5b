"""Streaming a file format that wants a file object (zip, parquet) out to an HTTP response a chunk at a time."""

from __future__ import annotations

import io


class ChunkSink(io.RawIOBase):
    """A write-only, unseekable file that keeps what it was given until drained.

    zipfile and pyarrow's ParquetWriter write into it; the caller yields `drain()` after each piece, so the
    whole archive or table never sits in memory. `tell()` is there because ParquetWriter asks for it.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self._chunks.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data
