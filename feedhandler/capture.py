"""The recorded-traffic capture format (JSON lines, optionally zstd): read and write.

One event per line with a kind ``t``: ``header`` (first line: ``format``,
``exchange``), ``connect``, ``send``, ``recv`` (``conn``, ``ts``, ``data``: one
WebSocket frame as text) and ``http`` (``url``, ``data``: a REST body).
``ts`` is the local receive time in float seconds. See
../shared/data/captures/README.md.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CaptureError(ValueError):
    """A capture file is unreadable; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class CaptureLine:
    kind: str
    conn: str
    ts_ns: int
    data: str
    url: str
    line: int


def _open_text(path: Path) -> io.TextIOBase:
    raw = path.open("rb")
    if raw.read(4) == ZSTD_MAGIC:
        raw.seek(0)
        stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.TextIOWrapper(stream, encoding="utf-8")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8")


def read_header(path: Path) -> dict[str, Any]:
    """The capture's header line (raises CaptureError if it has none)."""
    with _open_text(path) as f:
        first = f.readline()
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        raise CaptureError(f"{path}: line 1 is not JSON") from None
    if not isinstance(header, dict) or header.get("t") != "header":
        raise CaptureError(f"{path}: line 1 is not a capture header")
    return header


def read_capture(path: Path) -> Iterator[CaptureLine]:
    """Yield the capture's events after the header, in file order."""
    with _open_text(path) as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise CaptureError(f"{path}: line {number} is not JSON: {text[:80]!r}") from None
            kind = obj.get("t") if isinstance(obj, dict) else None
            if kind == "header":
                continue
            if kind not in ("connect", "send", "recv", "http"):
                raise CaptureError(f"{path}: line {number} has unknown kind {kind!r}")
            data = obj.get("data", "")
            yield CaptureLine(
                kind,
                str(obj.get("conn", "")),
                int(float(obj.get("ts", 0)) * 1e9),
                data if isinstance(data, str) else orjson.dumps(data).decode(),
                str(obj.get("url", obj.get("addr", ""))),
                number,
            )
