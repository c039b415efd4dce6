"""The journal: group commits are durable in order; a torn last line is dropped on reopening,
corruption before the end is refused with its line number."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trading.journal import Journal, JournalError, read


def commands(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"k": "sim", "s": "BTC-USD", "n": i, "ts": i * 7} for i in range(start, start + n)]


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
        assert read(path)[0] == []  # appended is not yet written
        assert await j.commit() == 100 and j.commits == 1
        for c in commands(5, 100):
            j.append(c)
        assert await j.commit() == 5 and await j.commit() == 0
        j.close()

    asyncio.run(scenario())
    assert read(path)[0] == commands(105)
    again = Journal(path)
    assert list(again) == commands(105) and again.committed == 105
    again.close()


def test_torn_last_line_is_cut_and_appending_goes_on_after_the_good_prefix(
    tmp_path: Path,
) -> None:
    path = written(tmp_path / "j", 10)
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[3][:20])  # died mid-write
    j = Journal(path)
    assert list(j) == commands(10)
    assert path.read_bytes() == whole  # the torn bytes are gone
    j.append(commands(1, 10)[0])
    j.commit_now()
    j.close()
    assert read(path)[0] == commands(11)


@pytest.mark.parametrize("damage", ["crc", "json"])
def test_corruption_before_the_end_is_refused_with_its_line(tmp_path: Path, damage: str) -> None:
    path = written(tmp_path / "j", 10)
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "crc":
        lines[4] = lines[4].replace(b'"n":4', b'"n":5')
    else:
        lines[4] = lines[4][:9] + b"{not json\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match=r"line 5 is corrupt"):
        Journal(path)
    assert path.read_bytes() == b"".join(lines)  # refused, never rewritten


def test_checkpoint_starts_a_generation_holding_only_what_came_after(tmp_path: Path) -> None:
    path = written(tmp_path / "j", 10)

    async def checkpoint() -> None:
        j = Journal(path)
        for c in commands(3, 10):  # appended after the state was taken: kept
            j.append(c)
        await j.commit()
        await j.write_checkpoint(b'{"venue": "after 10"}', covers=10)
        j.append(commands(1, 13)[0])
        await j.commit()
        j.close()

    asyncio.run(checkpoint())
    j = Journal(path)
    assert j.checkpoint is not None and j.checkpoint["state"] == {"venue": "after 10"}
    assert list(j) == commands(4, 10) and j.generation == 1 and j.in_file == 4
    j.close()
    assert len(path.read_bytes().splitlines()) == 5  # generation line + 4 commands


def test_a_stop_between_checkpoint_and_rotation_recovers_the_same(tmp_path: Path) -> None:
    from trading.journal import _replace

    path = written(tmp_path / "j", 10)
    checkpoint = path.with_name("j.checkpoint")
    _replace(checkpoint, b'{"g": 1, "covers": 6, "state": {}}')  # the rotation never ran
    j = Journal(path)
    assert list(j) == commands(4, 6)  # the first 6 are inside the checkpoint
    j.close()
    _replace(checkpoint, b'{"g": 3, "covers": 6, "state": {}}')
    with pytest.raises(JournalError, match="does not follow checkpoint generation 3"):
        Journal(path)
    checkpoint.write_bytes(b"{half a check")
    with pytest.raises(JournalError, match=r"checkpoint .* is corrupt"):
        Journal(path)
