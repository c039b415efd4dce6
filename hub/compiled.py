"""The order path's Python modules, compiled by Cython from their own source.

Cython compiles each module named in ``COMPILED`` as it is (pure-Python mode: nothing
declared, the annotations not enforced, the language's semantics kept) into an extension
module beside its ``.py``, which ``import`` then finds first: the venue's checks and
matching run about a third faster than under the interpreter (docs/order-entry.md).

The source stays what runs wherever the build does not match it. ``setup.py`` records
the SHA-256 of each source it compiled (``BUILT``, a JSON file beside this one); a module
whose source has changed since (an edit without a rebuild) is imported from its source,
with a warning, so a stale build never runs. ``ORDERBOOK_CORE=python`` (the test run on
the book core's pure-Python twin) imports every one of them from source as well, and
``ORDERBOOK_CORE=cython`` insists on the compiled ones, as it does for the book core.

Standard library only: setup.py reads ``COMPILED`` from this file before anything is
installed, and ``hub/__init__.py`` installs the finder before any of these is imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

COMPILED = (
    "hub.wire",
    "hub.auth",
    "trading.messages",
    "trading.schema",
    "trading.checks",
    "trading.accounts",
    "trading.venue",
    "trading.journal",
    "trading.session",
    "trading.gateway",
)
"""Modules of the order path built as extensions (every message of a session passes
through each). Each must be plain Python that Cython 3 compiles: no ``match``."""
BUILT = Path(__file__).with_name("compiled.json")
"""{module: SHA-256 of the source its extension was built from}, written by setup.py."""

log = logging.getLogger(__name__)


def digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def source_of(name: str, root: Path) -> Path:
    """Where module ``name``'s source is under ``root`` (the directory holding ``hub``)."""
    return root.joinpath(*name.split(".")).with_suffix(".py")


class SourceUnlessBuilt(importlib.abc.MetaPathFinder):
    """Imports each of ``names`` from its source unless its extension is current: built
    from a source whose digest ``built`` records (``choice``: ORDERBOOK_CORE's value)."""

    def __init__(
        self, choice: str, names: Sequence[str] = COMPILED, built: dict[str, str] | None = None
    ) -> None:
        self.choice, self.names = choice, frozenset(names)
        self.built = _built() if built is None else built

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names or not path:
            return None
        source = Path(next(iter(path))) / (fullname.rpartition(".")[2] + ".py")
        if not source.is_file():
            return None
        if self.choice != "python":
            recorded, extension = self.built.get(fullname), _extension(source)
            if extension and recorded == digest(source):
                return None  # the ordinary finders load the extension beside it
            if not extension:
                why = "not built"
            elif recorded is None:
                why = "built, but its build is not recorded"
            else:
                why = "changed since it was built"
            if self.choice == "cython":
                raise ImportError(
                    f"ORDERBOOK_CORE=cython, but {fullname} is {why}: "
                    "rebuild with `.venv/bin/python setup.py build_ext --inplace`"
                )
            if extension:
                log.warning(
                    "compiled module out of date: running its source",
                    extra={"compiled_module": fullname, "why": why},
                )
        return importlib.util.spec_from_file_location(fullname, source)


def _built() -> dict[str, str]:
    try:
        found = json.loads(BUILT.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _extension(source: Path) -> bool:
    return any(
        source.with_name(source.stem + suffix).is_file()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once per process)."""
    if not any(isinstance(f, SourceUnlessBuilt) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceUnlessBuilt(os.environ.get("ORDERBOOK_CORE", "auto")))


def running_compiled() -> dict[str, bool]:
    """For each ``COMPILED`` module imported so far: whether its extension is what runs."""
    out = {}
    for name in COMPILED:
        module = sys.modules.get(name)
        if module is not None:
            out[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    return out
