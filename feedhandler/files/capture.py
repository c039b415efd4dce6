"""The recorded-traffic capture format (JSON lines, optionally zstd): read and write.

One event per line with a kind ``t``: ``header`` (first line: ``format``,
``exchange``), ``connect``, ``send``, ``recv`` (``conn``, ``ts``, ``data``: one
WebSocket frame as text) and ``http`` (``url``, ``data``: a REST body).
``ts`` is the local receive time in float seconds. See
../shared/data/captures/README.md.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import zstandard

from hub.errors import BadInput

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CaptureError(BadInput):
    """A capture file cannot be read (or written); the message names the file and line."""


@dataclass(frozen=True, slots=True)
class CaptureLine:
    kind: str
    conn: str
    ts_ns: int
    data: str
    url: str
    line: int
    raw: bytes = b""
    """A binary frame's bytes (the line's ``b64``: Huobi's gzip frames); ``data`` is then ""."""


def _open(path: Path) -> io.BufferedIOBase:
    """The capture's bytes, decompressed when it starts with the zstd magic number
    (CaptureError naming the file if it cannot be opened)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from exc
    if raw.read(4) == ZSTD_MAGIC:
        raw.seek(0)
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    raw.seek(0)
    return raw


def read_header(path: Path) -> dict[str, Any]:
    """The capture's header line (raises CaptureError if it has none)."""
    try:
        with _open(path) as f:
            first = f.readline()
    except zstandard.ZstdError as exc:
        raise CaptureError(f"{path}: not readable as zstd ({exc})") from None
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        raise CaptureError(f"{path}: line 1 is not JSON") from None
    if not isinstance(header, dict) or header.get("t") != "header":
        raise CaptureError(f"{path}: line 1 is not a capture header")
    return header


OnBadLine = Callable[[int, str, str], None]
"""Called with (line number, why, the line's text) for a line that is skipped."""


def read_capture(path: Path, on_bad_line: OnBadLine | None = None) -> Iterator[CaptureLine]:
    """Yield the capture's events after the header, in file order.

    A line that is not JSON (or not UTF-8), of an unknown kind or with an unreadable
    field raises CaptureError naming the file and line; with ``on_bad_line`` it is
    reported there and skipped. Compressed data that ends early or is corrupt raises
    CaptureError after the last good line either way."""
    number = 0
    try:
        with _open(path) as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    line = _line(raw, number)
                except CaptureError as exc:
                    if on_bad_line is None:
                        raise CaptureError(f"{path}: {exc}") from None
                    on_bad_line(number, str(exc), raw[:200].decode("utf-8", "replace"))
                    continue
                if line is not None:
                    yield line
    except zstandard.ZstdError as exc:
        raise CaptureError(f"{path}: compressed data corrupt after line {number} ({exc})") from None


def _line(raw: bytes, number: int) -> CaptureLine | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CaptureError(f"line {number} is not JSON: {raw[:80]!r}") from None
    kind = obj.get("t") if isinstance(obj, dict) else None
    if kind == "header":
        return None
    if kind not in ("connect", "send", "recv", "http"):
        raise CaptureError(f"line {number} has unknown kind {kind!r:.40}")
    data = obj.get("data", "")
    ts = obj.get("ts", 0)
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not 0 <= ts < 1e10:
        raise CaptureError(f"line {number} has no valid time 'ts': {ts!r:.40}")
    try:
        text = data if isinstance(data, str) else orjson.dumps(data).decode()
    except TypeError:  # an integer past 64 bits in a JSON body orjson cannot write back
        raise CaptureError(f"line {number}: 'data' cannot be read back as JSON text") from None
    raw = b""
    if "b64" in obj:
        try:
            raw = base64.b64decode(str(obj["b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise CaptureError(f"line {number}: 'b64' is not base64") from None
    return CaptureLine(
        kind,
        str(obj.get("conn", "")),
        int(ts * 1e9),
        text,
        str(obj.get("url", obj.get("addr", ""))),
        number,
        raw,
    )


class CaptureWriter:
    """Records live traffic in the capture format, zstd-compressed when the name ends in .zst.

    Lines are written as they happen, so a capture cut short by a crash is readable up to
    its last complete line (zstd output is flushed every ``FLUSH_EVERY`` lines)."""

    FLUSH_EVERY = 256

    def __init__(self, path: Path, exchange: str, config: dict[str, Any]) -> None:
        self.path = path
        self.lines = 0
        raw = path.open("wb")
        self._zstd = path.suffix == ".zst"
        self._out: Any = (
            zstandard.ZstdCompressor(level=9).stream_writer(raw, closefd=True)
            if self._zstd
            else raw
        )
        self._write(
            {
                "t": "header",
                "format": 2,
                "exchange": exchange.upper(),
                "config": config,
                "recorded": time.time(),
                "recorder": "hub capture",
            }
        )

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(obj) + b"\n")
        self.lines += 1
        if self._zstd and self.lines % self.FLUSH_EVERY == 0:
            self._out.flush(zstandard.FLUSH_BLOCK)

    def connect(self, conn: str, addr: str) -> None:
        self._write({"t": "connect", "conn": conn, "ts": time.time(), "addr": addr})

    def send(self, conn: str, addr: str, data: str) -> None:
        self._write({"t": "send", "conn": conn, "ts": time.time(), "addr": addr, "data": data})

    def recv(self, conn: str, data: str, ts_ns: int) -> None:
        self._write({"t": "recv", "conn": conn, "ts": ts_ns / 1e9, "data": data})

    def http(self, conn: str, url: str, data: str, ts_ns: int) -> None:
        self._write({"t": "http", "conn": conn, "ts": ts_ns / 1e9, "url": url, "data": data})

    def close(self) -> None:
        self._out.close()
