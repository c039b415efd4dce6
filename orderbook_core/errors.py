"""Integrity errors raised by the book core, compiled or pure Python.

    BookError                  base; ``retriable`` says whether retrying the same call can help
    ├── InvalidSize            a size that is negative (L2) or not positive (orders)
    ├── InvalidPrice           a price that is not positive
    ├── OrderNotFound          an order id the book does not hold
    ├── DuplicateOrderId       an order id the book already holds
    └── OrdersCrossed          an operation that would leave best bid >= best ask

Both implementations raise exactly these classes, so callers and the
differential tests see the same errors whichever core is selected.
"""

from __future__ import annotations


class BookError(Exception):
    """An operation was refused because it would corrupt the book."""

    retriable = False


class InvalidSize(BookError, ValueError):
    """The size is out of range for this operation."""


class InvalidPrice(BookError, ValueError):
    """The price is out of range for this operation."""


class OrderNotFound(BookError, KeyError):
    """The order id is not in the book."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "order not found"


class DuplicateOrderId(BookError, ValueError):
    """The order id is already in the book."""


class OrdersCrossed(BookError):
    """The book would be crossed (best bid >= best ask)."""
