"""The compiled engine's constants (_engine_consts.pxi) equal the Python names of
orderbook_core.engine_types: a code added or renumbered on one side only fails here."""

from __future__ import annotations

import re
from pathlib import Path

from orderbook_core.engine_types import Event, ExecType, OrderType, Reason

PXI = Path(__file__).resolve().parents[2] / "orderbook_core" / "_engine_consts.pxi"


def _defs() -> dict[str, int]:
    """The plain integer DEFs (NO_ORDER, an expression, is left out)."""
    found = re.findall(r"^DEF (\w+) = (-?\d+)\s*(?:#.*)?$", PXI.read_text(), re.M)
    return {name: int(value) for name, value in found}


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
