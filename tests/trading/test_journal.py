"""The journal: group commits are durable in order; a torn last line is dropped on reopening,
corruption before the end is refused with its line number, a journal of another format as
a whole; every command comes back as it went in."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from trading.journal import Journal, JournalError, decode, encode, is_record, read
from trading.messages import (
    Cancel,
    Command,
    Kill,
    MassCancel,
    New,
    Replace,
    SetState,
    Sim,
)


def commands(n: int, start: int = 0) -> list[Command]:
    return [Sim("BTC-USD", i, i * 7) for i in range(start, start + n)]


def records(cmds: list[Command]) -> list[Any]:
    """The commands as the journal holds them (JSON values)."""
    return [orjson.loads(encode(c)) for c in cmds]


def written(path: Path, n: int) -> Path:
    """A journal file holding ``commands(n)``, committed and closed."""
    j = Journal(path)
    for c in commands(n):
        j.append(c)
    j.commit_now()
    j.close()
    return path


def test_group_commit_writes_everything_appended_in_one_go(tmp_path: Path) -> None:
    path = tmp_path / "j"

    async def scenario() -> None:
        j = Journal(path)
        for c in commands(100):
            j.append(c)
        assert read(path).records == []  # appended is not yet written
        assert await j.commit() == 100 and j.commits == 1
        for c in commands(5, 100):
            j.append(c)
        assert await j.commit() == 5 and await j.commit() == 0
        j.close()

    asyncio.run(scenario())
    assert read(path).records == records(commands(105))
    again = Journal(path)
    assert [decode(r) for r in again] == commands(105) and again.committed == 105
    again.close()


def test_torn_last_line_is_cut_and_appending_goes_on_after_the_good_prefix(
    tmp_path: Path,
) -> None:
    path = written(tmp_path / "j", 10)
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[3][:20])  # died mid-write
    j = Journal(path)
    assert list(j) == records(commands(10))
    assert path.read_bytes() == whole  # the torn bytes are gone
    j.append(commands(1, 10)[0])
    j.commit_now()
    j.close()
    assert read(path).records == records(commands(11))


@pytest.mark.parametrize("damage", ["crc", "json"])
def test_corruption_before_the_end_is_refused_with_its_line(tmp_path: Path, damage: str) -> None:
    path = written(tmp_path / "j", 10)
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "crc":
        lines[4] = lines[4].replace(b'"BTC-USD",3,', b'"BTC-USD",4,')
    else:
        lines[4] = lines[4][:9] + b"{not json\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match=r"line 5 is corrupt"):  # the header is line 1
        Journal(path)
    assert path.read_bytes() == b"".join(lines)  # refused, never rewritten


def test_checkpoint_starts_a_generation_holding_only_what_came_after(tmp_path: Path) -> None:
    path = written(tmp_path / "j", 10)

    async def checkpoint() -> None:
        j = Journal(path)
        j.mark(10)  # the venue's state after the 10 commands is taken now
        for c in commands(3, 10):  # appended after the state was taken: kept
            j.append(c)
        await j.commit()
        await j.write_checkpoint(b'{"venue": "after 10"}', covers=10)
        j.append(commands(1, 13)[0])
        await j.commit()
        j.close()

    asyncio.run(checkpoint())
    rotated(path, {"venue": "after 10"}, commands(4, 10))
    assert path.read_bytes().split(b" ", 1)[1].startswith(b'["journal",2,1]\n')


def test_a_checkpoint_not_marked_or_not_committed_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path / "j", 10)

    async def checkpoint() -> None:
        j = Journal(path)
        with pytest.raises(ValueError, match="covering 10 was not marked"):
            await j.write_checkpoint(b"{}", covers=10)
        j.append(commands(1, 10)[0])
        j.mark(11)  # not committed yet
        with pytest.raises(ValueError, match="covering 11 was not marked, or not committed"):
            await j.write_checkpoint(b"{}", covers=11)
        j.close()

    asyncio.run(checkpoint())
    assert not path.with_name("j.checkpoint").exists()
    j = Journal(path)
    assert list(j) == records(commands(10))
    j.close()


def test_commits_go_on_while_a_checkpoint_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint is taken after command 11, with 2 more appended before the commit that
    writes it (the mark falls inside a batch); 2 more are committed while the checkpoint
    file is still being written. A stop at that moment recovers the old generation past the
    checkpoint; after it the new generation holds exactly the 4 commands that followed."""
    from trading import journal

    path = written(tmp_path / "j", 10)
    started, release = threading.Event(), threading.Event()
    replace = journal._replace

    def slow(target: Path, data: bytes) -> None:
        if target.name.endswith(".checkpoint"):
            started.set()
            assert release.wait(5)
        replace(target, data)

    monkeypatch.setattr(journal, "_replace", slow)

    async def checkpoint() -> None:
        j = Journal(path)
        j.append(commands(1, 10)[0])
        j.mark(11)  # the venue's state after command 11 is taken now
        for c in commands(2, 11):
            j.append(c)
        assert await j.commit() == 3
        writing = asyncio.create_task(j.write_checkpoint(b'{"venue": "after 11"}', covers=11))
        assert await asyncio.to_thread(started.wait, 5)
        for c in commands(2, 13):
            j.append(c)
        assert await asyncio.wait_for(j.commit(), 2) == 2  # while the checkpoint is written
        assert not writing.done()
        stopped = Journal(path)  # a stop now: no checkpoint yet, the old generation whole
        assert list(stopped) == records(commands(15)) and stopped.generation == 0
        stopped.close()
        release.set()
        await writing
        j.append(commands(1, 15)[0])
        await j.commit()
        j.close()

    asyncio.run(checkpoint())
    rotated(path, {"venue": "after 11"}, commands(5, 11))


def rotated(path: Path, state: Any, after: list[Command]) -> None:
    """The journal at ``path`` is generation 1 after a checkpoint holding ``state``, and
    holds exactly the commands ``after`` it."""
    j = Journal(path)
    assert j.checkpoint is not None and j.checkpoint["state"] == state
    assert list(j) == records(after) and j.generation == 1 and j.in_file == len(after)
    j.close()
    assert len(path.read_bytes().splitlines()) == 1 + len(after)  # the header, then them


def test_a_stop_between_checkpoint_and_rotation_recovers_the_same(tmp_path: Path) -> None:
    from trading.journal import _replace

    path = written(tmp_path / "j", 10)
    checkpoint = path.with_name("j.checkpoint")
    _replace(checkpoint, b'{"g": 1, "covers": 6, "state": {}}')  # the rotation never ran
    j = Journal(path)
    assert list(j) == records(commands(4, 6))  # the first 6 are inside the checkpoint
    j.close()
    _replace(checkpoint, b'{"g": 3, "covers": 6, "state": {}}')
    with pytest.raises(JournalError, match="does not follow checkpoint generation 3"):
        Journal(path)
    checkpoint.write_bytes(b"{half a check")
    with pytest.raises(JournalError, match=r"checkpoint .* is corrupt"):
        Journal(path)


def test_every_kind_of_command_comes_back_as_it_was_written(tmp_path: Path) -> None:
    every: list[Command] = [
        Sim("BTC-USD", 2000, 1),
        SetState("ETH-USD", "halted", 2),
        New(1001, 3, "c1", "BTC-USD", 0, 3, 6_400_000, 2**62, 1, True, 7, 6_410_000, 4, "f" * 16),
        Cancel(1001, 4, "BTC-USD", -(2**63)),
        Replace(1002, 5, "ETH-USD", 10**12, 1, 2),
        MassCancel(1001, 6, None),
        MassCancel(1001, 7, "BTC-USD"),
        Kill(1002, 8, True),
    ]
    j = Journal(tmp_path / "j", fsync=False)
    for c in every:
        j.append(c)
    j.commit_now()
    j.close()
    assert [decode(r) for r in Journal(tmp_path / "j")] == every
    assert encode(every[3]) == b'["cancel",1001,4,"BTC-USD",-9223372036854775808]'


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (["teleport", 1], "unknown command kind"),
        ({"k": "sim"}, "unknown command kind"),
        ([], "unknown command kind"),
        (["sim", "BTC-USD", 3], "a sim command has 3 fields (symbol, n, ts), not 2"),
        (["sim", "BTC-USD", 3.0, 1], "sim n must be int, got float"),
        (["kill", 1001, 1, 1], "kill on must be bool, got int"),
        (["mass_cancel", 1001, 1, 5], "mass_cancel symbol must be str | None, got int"),
        (["cancel", True, 1, "BTC-USD", 5], "cancel account must be int, got bool"),
    ],
)
def test_decode_names_what_is_wrong_with_a_record(record: object, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        decode(record)


def test_only_an_array_naming_a_kind_is_a_command_record() -> None:
    assert is_record(["sim", 1]) and is_record(["kill"])  # (decode judges the fields)
    for junk in ([[1], 2], [{"k": 1}], [], [1, 2, 3], {"k": "sim"}, "sim", None):
        assert not is_record(junk), junk


def test_a_journal_of_the_old_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    """Before issue 15 a line held a JSON object; such a file is not read (nor rewritten)."""
    import zlib

    body = b'{"k":"sim","s":"BTC-USD","n":3,"ts":1}'
    old = b"%08x %s\n" % (zlib.crc32(body), body)
    path = tmp_path / "orders.journal"
    path.write_bytes(old * 3)
    with pytest.raises(JournalError, match=f"journal {path} is in the order log format before"):
        Journal(path)
    assert path.read_bytes() == old * 3
    header = b'["journal",1,0]'
    path.write_bytes(b"%08x %s\n" % (zlib.crc32(header), header))
    with pytest.raises(JournalError, match="does not start with a format 2 header"):
        Journal(path)


def test_a_new_journal_starts_with_its_header_even_before_a_command(tmp_path: Path) -> None:
    path = tmp_path / "orders.journal"
    Journal(path).close()
    assert read(path) == (0, [], len(path.read_bytes())) and path.read_bytes().endswith(
        b' ["journal",2,0]\n'
    )
    path.write_bytes(path.read_bytes()[:12])  # died while writing the header: start again
    Journal(path).close()
    assert read(path).length == len(path.read_bytes()) > 12
