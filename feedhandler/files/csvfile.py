"""Rows of a CSV file for the file formats' readers (LOBSTER, Databento), numbered.

Bytes that are not UTF-8 become U+FFFD, so the row they are in is refused by the
reader's own field checks; a row the CSV module cannot split at all raises the
format's error naming the file and line (a file that cannot be opened, naming the file).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

Row = TypeVar("Row")


def read_rows(
    path: Path,
    reader: Callable[[IO[str]], Iterable[Row]],
    error: Callable[[str], Exception],
) -> Iterator[tuple[int, Row]]:
    """(line number, row) of every row ``reader`` (``csv.reader``, ``csv.DictReader``)
    makes of ``path``; a file that cannot be opened raises ``error`` naming it."""
    try:
        f = path.open(newline="", errors="replace")
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or exc}") from exc
    with f:
        rows: Any = reader(f)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                raise error(f"{path.name} line {rows.line_num}: {exc}") from None
            yield rows.line_num, row
