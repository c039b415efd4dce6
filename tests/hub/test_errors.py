"""The error tree (hub.errors): drawn once, true of the code, and what the ``hub``
command makes of each branch (its one-line message and exit code)."""

from __future__ import annotations

import gzip
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hub.errors
from feedhandler.files.capture import CaptureError
from feedhandler.files.databento import DatabentoError
from feedhandler.files.itch import ItchFileError, itch_book, replay_itch
from feedhandler.files.lobster import LobsterError
from feedhandler.frames import MalformedFrame
from hub.errors import (
    BadInput,
    BadMessage,
    ConfigError,
    HubError,
    ServiceError,
    ServiceUnavailable,
)
from orderbook_core.errors import ItchFormatError, UnknownStockLocate
from testing import itchgen as g
from tests.conftest import ROOT

ROOMS = ("hub", "bus", "feedhandler", "trading", "fanout", "recorder", "client", "app")
_BRANCH = re.compile(r"^(?P<indent>[│ ]*)[├└]── (?P<names>[A-Za-z]+(?:, [A-Za-z]+)*)(?:\s{2,}|$)")


def drawn_tree() -> dict[str, str]:
    """Class name -> parent name, as the drawing in hub.errors' docstring has them."""
    doc = hub.errors.__doc__ or ""
    lines = doc.split("\n\n")[1].splitlines()
    assert lines[0].startswith("HubError ")
    parents: dict[str, str] = {}
    path = ["HubError"]
    for line in lines[1:]:
        m = _BRANCH.match(line)
        if m is None:
            continue  # a description's second line
        depth = len(m["indent"]) // 4 + 1
        del path[depth:]
        names = m["names"].split(", ")
        for name in names:
            parents[name] = path[depth - 1]
        path.append(names[0])
    return parents


def code_tree() -> dict[str, str]:
    """Every HubError subclass the product defines -> its parent in the tree."""
    for room in ROOMS:
        package = importlib.import_module(room)
        for info in pkgutil.walk_packages(package.__path__, f"{room}."):
            importlib.import_module(info.name)
    parents: dict[str, str] = {}
    todo: list[type[HubError]] = [HubError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in ROOMS:
                parents[sub.__name__] = cls.__name__
                todo.append(sub)
    return parents


def test_the_drawn_tree_is_the_code_tree() -> None:
    """Each error class the product defines is drawn, under its parent, and nothing else."""
    drawn = drawn_tree()
    assert drawn["ItchFileError"] == "BadInput" and drawn["ServiceUnavailable"] == "ServiceError"
    assert drawn == code_tree()


@pytest.mark.parametrize(
    "cls",
    [
        ConfigError,
        BadMessage,
        MalformedFrame,
        CaptureError,
        ItchFileError,
        LobsterError,
        DatabentoError,
        "trading.journal.JournalError",
        "fanout.protocol.ProtocolError",
        "client.market.SequenceGap",
        "client.market.ChecksumMismatch",
        "client.market.OrderBookMismatch",
        "bus.redis_store.BadSnapshot",
    ],
)
def test_every_input_error_is_bad_input(cls: type | str) -> None:
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, BadInput) and issubclass(cls, ValueError)


def test_only_an_unreachable_service_is_worth_retrying() -> None:
    assert ServiceUnavailable("Redis", "redis://h:1/0", "refused").retriable is True
    assert str(ServiceUnavailable("Redis", "redis://h:1/0", "refused")) == (
        "Redis unreachable at redis://h:1/0: refused"
    )
    for err in (HubError("x"), BadInput("x"), ConfigError("x"), ServiceError("x")):
        assert err.retriable is False
    assert LobsterError("x").retriable is False


def test_an_itch_file_error_keeps_the_cores_message_and_position(tmp_path: Path) -> None:
    path = tmp_path / "partial.itch"
    path.write_bytes(g.add_order(1, 1, 1, "B", 100, "AAPL", 150_0000) + g.delete(9, 2, 4))
    with pytest.raises(ItchFileError) as caught:
        replay_itch(path, ["AAPL"])
    err = caught.value
    assert isinstance(err.__cause__, UnknownStockLocate)
    assert str(err) == f"{path}: {err.__cause__.args[0]}"
    assert (err.offset, err.msg_type, err.locate) == (38, "D", 9)
    path.write_bytes(g.add_order(1, 1, 1, "B", 100, "AAPL", 150_0000) + b"\x00\x03Z12")
    with pytest.raises(ItchFileError) as caught:
        replay_itch(path)
    assert type(caught.value.__cause__) is ItchFormatError
    assert str(caught.value) == f"{path}: unknown ITCH message type 'Z' at byte 38"
    assert (caught.value.offset, caught.value.msg_type) == (38, "Z")
    with pytest.raises(ItchFileError, match=r"no book for symbol 'MSFT'"):
        itch_book(path, "MSFT", 1)
    with pytest.raises(ItchFileError) as caught:
        replay_itch(tmp_path / "none.itch")
    assert str(caught.value) == f"{tmp_path / 'none.itch'}: No such file or directory"
    assert caught.value.offset is None and isinstance(caught.value.__cause__, OSError)
    cut = tmp_path / "cut.itch.gz"
    whole = gzip.compress(g.stock_directory(1, 1, "AAPL") * 50)
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ItchFileError) as caught:
        replay_itch(cut)
    assert isinstance(caught.value.__cause__, EOFError)
    assert str(caught.value) == f"{cut}: {caught.value.__cause__}"


def run_hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


LOBSTER_ROW = "34200.0,1,1,100,1000000\n"  # five fields: LOBSTER rows have six


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["itch", "{tmp}/none.itch", "--symbol", "AAPL"], {}, 1,
         "hub: error: {tmp}/none.itch: No such file or directory"),
        (["itch", "{tmp}/bad.itch", "--symbol", "AAPL"], {}, 1,
         "hub: error: {tmp}/bad.itch: unknown ITCH message type 'Z' at byte 79"),
        (["itch", "{tmp}/bad.itch", "--symbol", "MSFT", "--after", "1"], {}, 1,
         "hub: error: {tmp}/bad.itch: no book for symbol 'MSFT'"),
        (["replay", "capture", "{tmp}/none.jsonl"], {}, 2,
         "hub: error: {tmp}/none.jsonl: No such file or directory"),
        (["replay", "capture", "{tmp}/bad.jsonl"], {}, 2,
         "hub: error: {tmp}/bad.jsonl: line 1 is not JSON"),
        (["replay", "capture", "{tmp}/bad.jsonl", "--venue", "kraken", "--speed", "x"], {}, 2,
         "hub: error: --speed must be 'max' or a positive number, got 'x'"),
        (["replay", "lobster", "{tmp}/AAPL_2012-06-21_message_1.csv"], {}, 2,
         "hub: error: AAPL_2012-06-21_message_1.csv line 1: "
         "not enough values to unpack (expected 6, got 5)"),
        (["replay", "databento", "{tmp}/none.csv"], {}, 2,
         "hub: error: {tmp}/none.csv: No such file or directory"),
        (["capture", "--venue", "kraken", "--symbols", "XBT/USD", "{tmp}/no/out.jsonl"], {}, 2,
         "hub: error: {tmp}/no/out.jsonl: cannot write: No such file or directory"),
        (["subscribe", "BTC-USD", "--url", "notaurl", "--count", "1"], {}, 3,
         "hub subscribe: cannot connect to notaurl: notaurl isn't a valid URI: "
         "scheme isn't ws or wss"),
        (["config"], {"HUB_FEED__SEDD": "1"}, 2,
         "hub: config error: unknown setting 'feed.sedd' (did you mean 'seed'?)"),
        (["demo", "--speed", "x"], {}, 2,
         "hub: config error: feed.speed: expected 'max' or a positive number, got 'x'"),
        (["feed", "--source", "lobster", "--file", "{tmp}/none.csv", "--kafka", "127.0.0.1:1"],
         {}, 1, "hub: error: feed.file {tmp}/none.csv: No such file or directory"),
        (["fanout", "--port", "x"], {}, 2, None),
        (["fanout"], {"HUB_FANOUT__PORT": "x"}, 2,
         "hub: config error: fanout.port: expected an integer, got 'x'"),
        (["recorder"], {"HUB_RECORDER_GROUP": "g"}, 2,
         "hub: config error: unknown setting HUB_RECORDER_GROUP "
         "(did you mean HUB_RECORDER__GROUP?)"),
        (["db", "migrate", "--postgres", "notadsn"], {}, 2,
         "hub: config error: postgres.dsn notadsn: "
         'missing "=" after "notadsn" in connection info string'),
        (["services", "restart"], {}, 2, None),
    ],
)  # fmt: skip
def test_each_command_names_bad_input_with_its_exit_code(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str | None
) -> None:
    """The message and exit code each command gave before the one handler in app.cli
    (None: argparse's own usage error)."""
    (tmp_path / "bad.itch").write_bytes(
        g.stock_directory(1, 1, "AAPL") + g.add_order(1, 2, 1, "B", 100, "AAPL", 1) + b"\0\3Z12"
    )
    (tmp_path / "bad.jsonl").write_text("x\n")
    (tmp_path / "AAPL_2012-06-21_message_1.csv").write_text(LOBSTER_ROW)
    out = run_hub(*(a.replace("{tmp}", str(tmp_path)) for a in args), env=env)
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    if message is None:
        assert lines[-1].startswith("hub ") and "error: argument" in lines[-1], out.stderr
    else:
        assert lines == [message.replace("{tmp}", str(tmp_path))]
