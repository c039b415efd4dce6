"""Types of the compiled frame scanners' JSON reader (orderbook_core._json): Python sees
only the key tables' builder; the rest is C (_json.pxd)."""

def words(names: str) -> bytes: ...
