"""Integrity errors raised by the book core, compiled or pure Python.

    BookError                  base; ``retriable`` says whether retrying the same call can help
    ├── InvalidSize            a size that is negative (L2) or not positive (orders)
    ├── InvalidPrice           a price that is not positive
    ├── OrderNotFound          an order id the book does not hold
    ├── DuplicateOrderId       an order id the book already holds
    ├── InvalidOrderId         the reserved order id -2**63
    ├── OrdersCrossed          an operation that would leave best bid >= best ask
    └── ItchFormatError        ITCH bytes that are truncated, of unknown type or wrong length
        └── UnknownStockLocate a book message for a stock locate never announced (R, A, F)

Errors raised while replaying a file also carry ``offset`` (byte offset of
the message's length prefix) and ``msg_type`` (its type letter), and their
message names both.

Both implementations raise exactly these classes, so callers and the
differential tests see the same errors whichever core is selected.

The matching engine works in int64: an argument that does not fit (an order id,
price or size of 2**63 or more) raises the built-in ``OverflowError`` before
anything changes, in both cores (the compiled one at argument conversion). A
well-typed order that would take a price level's size, or its own filled plus
open size, past int64 is not an exception but a reject report with reason
``SIZE_OVERFLOW`` (book unchanged): it is the engine's normal way of refusing
an order, sequenced in its event log like every other refusal.
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


class InvalidOrderId(BookError, ValueError):
    """The order id is the reserved value -2**63 (the books' empty-slot marker)."""


class DuplicateOrderId(BookError, ValueError):
    """The order id is already in the book."""


class OrdersCrossed(BookError):
    """The book would be crossed (best bid >= best ask)."""


def located(exc: Exception, where: str, offset: int, msg_type: str) -> Exception:
    """A copy of ``exc`` (same class) whose message starts with ``where``, carrying
    ``offset`` and ``msg_type`` attributes: how replay errors name their input."""
    detail = exc.args[0] if exc.args else type(exc).__name__
    err = type(exc)(f"{where}: {detail}")
    vars(err).update(offset=offset, msg_type=msg_type)
    return err


class ItchFormatError(BookError, ValueError):
    """ITCH bytes are truncated or corrupt; ``offset`` and ``msg_type`` say where."""

    def __init__(self, message: str, offset: int, msg_type: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.msg_type = msg_type


class UnknownStockLocate(ItchFormatError):
    """An ITCH book message names a stock ``locate`` that no R, A or F message announced
    (the input is not a whole session, or is corrupt); ``offset`` says where."""

    def __init__(self, locate: int, offset: int, msg_type: str) -> None:
        where = f"ITCH {msg_type!r} message at byte {offset}: " if offset >= 0 else ""
        super().__init__(
            f"{where}stock locate {locate} was never announced (no R, A or F message)",
            offset,
            msg_type,
        )
        self.locate = locate
