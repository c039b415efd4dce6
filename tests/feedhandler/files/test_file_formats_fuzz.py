"""Fuzzing the file readers: LOBSTER message and orderbook files, Databento MBO CSV and DBN,
each written by the tests from a real matching-engine session, then damaged (a field
replaced by a huge, negative, empty or non-numeric value, a row cut short or lengthened,
bytes that are not UTF-8, the file truncated). A replay either finishes or stops with the
reader's own error naming the file and line; the streaming sources never raise at all and
report every skipped record with its position."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedhandler.files.databento import DatabentoError, databento_batches, replay_databento
from feedhandler.files.lobster import LobsterError, lobster_batches, replay_lobster
from feedhandler.files.pacing import Batch
from testing.databento import session, write_csv, write_dbn
from testing.lobster import write_session

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "40"))
BAD_FIELDS = [
    "9" * 70,
    str(2**63),
    str(-(2**63) - 1),
    "-1",
    "0",
    "",
    "1e400",
    "NaN",
    "abc",
    "1.5",
    " ",
    '"',
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` (a CSV file) with one row damaged, or its bytes cut or spoiled."""
    lines = data.split(b"\n")
    kind = draw(st.sampled_from(["field", "field", "short", "long", "utf8", "cut"]))
    if kind == "cut":
        return data[: draw(st.integers(0, len(data)))]
    i = draw(st.integers(0, len(lines) - 2))
    fields = lines[i].split(b",")
    if kind == "field":
        j = draw(st.integers(0, len(fields) - 1))
        fields[j] = draw(st.sampled_from(BAD_FIELDS)).encode()
    elif kind == "short":
        fields = fields[: draw(st.integers(0, len(fields) - 1))]
    elif kind == "long":
        fields.append(b"7")
    else:
        j = draw(st.integers(0, len(fields) - 1))
        fields[j] += draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
    lines[i] = b",".join(fields)
    return b"\n".join(lines)


def drain(batches: Iterator[Batch]) -> list[Batch]:
    return list(batches)


@pytest.fixture(scope="module")
def lobster(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("lobster")
    messages, orderbook, _n = write_session(folder, seed=9, commands=300)
    return messages.read_bytes(), orderbook.read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_lobster_files_give_named_errors_never_tracebacks(
    lobster: tuple[bytes, bytes], tmp_path: Path, data: st.DataObject
) -> None:
    messages_bytes, orderbook_bytes = lobster
    which = data.draw(st.sampled_from(["messages", "orderbook"]))
    if which == "messages":
        messages_bytes = data.draw(damaged(messages_bytes))
    else:
        orderbook_bytes = data.draw(damaged(orderbook_bytes))
    messages = tmp_path / "TEST_2012-06-21_34200000_57600000_message_1.csv"
    orderbook = tmp_path / "TEST_2012-06-21_34200000_57600000_orderbook_1.csv"
    messages.write_bytes(messages_bytes)
    orderbook.write_bytes(orderbook_bytes)
    try:
        replay_lobster(messages, orderbook)
    except LobsterError as exc:
        assert "_1.csv" in str(exc) and ("line" in str(exc) or "fewer rows" in str(exc))
    errors: list[str] = []
    drain(lobster_batches(messages, "TEST", errors.append))
    assert all(e.startswith(messages.name + " line ") for e in errors), errors


@pytest.fixture(scope="module")
def mbo() -> list[list[object]]:
    batches, _books = session(4, 150)
    return batches  # type: ignore[return-value]


@FUZZ
@given(data=st.data())
def test_damaged_databento_csv_gives_named_errors_never_tracebacks(
    mbo: list[list[object]], tmp_path: Path, data: st.DataObject
) -> None:
    clean = tmp_path / "clean.csv"
    write_csv(clean, mbo)  # type: ignore[arg-type]
    path = tmp_path / "mbo.csv"
    path.write_bytes(data.draw(damaged(clean.read_bytes())))
    try:
        replay_databento(path)
    except DatabentoError as exc:
        assert str(exc).startswith("mbo.csv line ") or str(exc).startswith("mbo.csv:"), exc
    errors: list[str] = []
    drain(databento_batches(path, errors.append))
    assert all(e.startswith("mbo.csv line ") for e in errors), errors


@FUZZ
@given(data=st.data())
def test_damaged_dbn_files_give_named_errors_never_tracebacks(
    mbo: list[list[object]], tmp_path: Path, data: st.DataObject
) -> None:
    import zstandard

    clean = tmp_path / "clean.dbn.zst"
    write_dbn(clean, mbo)  # type: ignore[arg-type]
    raw = bytearray(zstandard.ZstdDecompressor().stream_reader(clean.read_bytes()).read())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    path = tmp_path / "mbo.dbn"
    path.write_bytes(bytes(raw))
    try:
        replay_databento(path)
    except DatabentoError as exc:
        assert str(exc).startswith("mbo.dbn"), exc
    errors: list[str] = []
    drain(databento_batches(path, errors.append))
    assert all(e.startswith("mbo.dbn") for e in errors), errors
