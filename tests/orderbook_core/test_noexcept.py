"""``noexcept`` only on leaf helpers: a noexcept cdef function that raises (or calls
something that can, such as a growing C++ container) prints the error and carries on,
so the compiled core would swallow what the Python twin raises."""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "orderbook_core"
HEADER = re.compile(r"^( *)cdef (?:inline )?[\w*\[\] ]+? (\w+)\(", re.M)
MAY_RAISE = ("raise ", ".push_back(", ".put(", ".reserve(", "[0][", ".append(", "PyLong_")
"""Python raises, and the C++ calls declared ``except +`` (they raise MemoryError)."""


def functions(text: str) -> dict[str, tuple[bool, str]]:
    """Each cdef function of a .pyx: (declared noexcept, its body)."""
    out: dict[str, tuple[bool, str]] = {}
    starts = list(HEADER.finditer(text))
    for m in starts:
        header_end = text.index(":\n", m.end())
        indent = len(m.group(1))
        body_lines = []
        for line in text[header_end + 2 :].split("\n"):
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body_lines.append(line)
        out[m.group(2)] = ("noexcept" in text[m.start() : header_end], "\n".join(body_lines))
    return out


def test_noexcept_functions_neither_raise_nor_call_what_can() -> None:
    checked = 0
    for pyx in sorted(CORE.glob("*.pyx")):
        found = functions(pyx.read_text())
        for name, (noexcept, body) in found.items():
            if not noexcept:
                continue
            checked += 1
            assert not [t for t in MAY_RAISE if t in body], f"{pyx.name}: {name}"
            called = set(re.findall(r"\b(\w+)\(", body)) & set(found)
            raising = sorted(c for c in called if not found[c][0])
            assert not raising, f"{pyx.name}: noexcept {name} calls {raising}"
    assert checked >= 10  # the parser found the leaf helpers
