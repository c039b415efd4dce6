"""The compiled core's constants (_consts.pxi) equal their Python names in
orderbook_core.types, engine_types and _pyl3, and no .pyx declares its own copy:
a code added or renumbered on one side only fails here."""

from __future__ import annotations

import re
from pathlib import Path

from orderbook_core import _pyl3
from orderbook_core.engine_types import Event, ExecType, OrderType, Reason
from orderbook_core.types import F_LAST, F_SNAPSHOT, INT64_MAX, INT64_MIN, Action, Side

CORE = Path(__file__).resolve().parents[2] / "orderbook_core"
PXI = CORE / "_consts.pxi"
DEF = re.compile(r"^DEF (\w+) = (.+?)\s*(?:#.*)?$", re.M)


def _defs() -> dict[str, int]:
    """Every DEF of the .pxi, its value worked out (they are integer expressions)."""
    return {name: int(eval(value, {})) for name, value in DEF.findall(PXI.read_text())}


def test_book_sides_actions_flags_and_batch_ops_match() -> None:
    d = _defs()
    assert d["NO_ORDER"] == INT64_MIN and d["SIZE_MAX"] == INT64_MAX
    assert {s.name: int(s) for s in Side} == {n: d[n] for n in ("BID", "ASK")}
    assert {a.name: int(a) for a in Action} == {n: d[n] for n in Action.__members__}
    assert (d["F_LAST"], d["F_SNAPSHOT"]) == (F_LAST, F_SNAPSHOT)
    ops = {n: getattr(_pyl3, n) for n in dir(_pyl3) if n.startswith("OP_")}
    assert ops == {k: v for k, v in d.items() if k.startswith("OP_")}


def test_event_order_type_and_exec_codes_match() -> None:
    d = _defs()
    assert {e.name: int(e) for e in Event} == {k[3:]: v for k, v in d.items() if k[:3] == "EV_"}
    assert {t.name: int(t) for t in OrderType} == {
        n: d[n] for n in ("LIMIT", "MARKET", "STOP", "STOP_LIMIT")
    }
    assert {x.name: int(x) for x in ExecType} == {n: d[n] for n in ExecType.__members__}


def test_every_reason_has_one_compiled_code() -> None:
    codes = sorted(v for k, v in _defs().items() if k.startswith("R_"))
    assert codes == sorted(int(r) for r in Reason)
    assert _defs()["R_SIZE_OVERFLOW"] == Reason.SIZE_OVERFLOW
    assert _defs()["R_DISPLAY"] == Reason.INVALID_DISPLAY


def test_every_compiled_module_takes_the_constants_from_the_one_file() -> None:
    shared = set(_defs())
    for pyx in sorted(CORE.glob("*.pyx")):
        text = pyx.read_text()
        assert 'include "_consts.pxi"' in text, pyx.name
        own = {name for name, _value in DEF.findall(text)}
        assert not own & shared, f"{pyx.name} redeclares {sorted(own & shared)}"
    for pxd in CORE.glob("*.pxd"):
        assert not DEF.findall(pxd.read_text()), pxd.name
