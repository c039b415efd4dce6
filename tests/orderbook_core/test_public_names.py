"""The compiled core and its pure-Python twin export the same public names: the
``orderbook_core`` package under either ORDERBOOK_CORE choice, and every public
class's methods and attributes (on an instance, so the twins' attributes set in
``__init__`` count as the compiled ``readonly`` ones do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("L2Book", "L3Book", "MatchingEngine", "ItchReplay", "UnitScale")
SURVEY = f"""
import json
import orderbook_core as oc

def public(names):
    return sorted(n for n in names if not n.startswith("_"))

out = {{"implementation": oc.IMPLEMENTATION, "package": public(dir(oc)), "all": sorted(oc.__all__)}}
for name in {CLASSES!r}:
    out[name] = public(dir(getattr(oc, name)()))
print(json.dumps(out))
"""


def survey(choice: str) -> dict[str, Any]:
    """The public names a fresh interpreter sees with ``ORDERBOOK_CORE=choice``."""
    env = {**os.environ, "ORDERBOOK_CORE": choice}
    out = subprocess.run(
        [sys.executable, "-c", SURVEY], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_both_cores_export_the_same_names() -> None:
    compiled, python = survey("cython"), survey("python")
    assert (compiled.pop("implementation"), python.pop("implementation")) == ("cython", "python")
    assert compiled["package"] == python["package"]
    assert compiled["all"] == python["all"] and set(compiled["all"]) <= set(compiled["package"])
    for name in CLASSES:
        assert compiled[name] == python[name], name
        assert compiled[name], name  # the survey saw the class's API, not an empty list
    assert compiled == python
