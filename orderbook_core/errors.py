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

Each error carries its data as typed attributes, set by both cores at every
raise site, so code can handle it without parsing the message (which stays
as it was, for people): ``order_id``, ``side``, ``price``, ``size`` as fit the
class (see each). Where the input was a batch or a file, every BookError also
says where: ``index`` (the operation's position in an ``apply_batch``), or
``offset`` (byte offset of the message's length prefix) and ``msg_type`` (its
ITCH type letter) for a replay, whose message names both; they are None
otherwise.

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

import copy


class BookError(Exception):
    """An operation was refused because it would corrupt the book."""

    retriable = False
    index: int | None = None
    """Position of the refused operation in an ``apply_batch`` input."""
    offset: int | None = None
    """Byte offset of the replayed message (its length prefix) that was refused."""
    msg_type: str | None = None
    """ITCH type letter of that message."""

    def __reduce__(self) -> tuple[object, ...]:
        """Copy and pickle with the data attributes, which ``__init__`` takes by keyword."""
        return (_rebuild, (type(self), self.args, dict(vars(self))))


def _rebuild(cls: type[BookError], args: tuple[object, ...], data: dict[str, object]) -> BookError:
    err = cls.__new__(cls, *args)
    err.args = args
    vars(err).update(data)
    return err


class InvalidSize(BookError, ValueError):
    """The size is out of range for this operation: ``size`` (the refused size, or the
    lots to remove), with the level's ``side`` and ``price`` and the ``order_id`` where
    known (None for an L2 level, or a replace's bad size before its new price)."""

    def __init__(
        self,
        message: str,
        *,
        size: int,
        side: int | None = None,
        price: int | None = None,
        order_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.size = size
        self.side = side
        self.price = price
        self.order_id = order_id


class InvalidPrice(BookError, ValueError):
    """The ``price`` is out of range for this operation (``side``, ``order_id`` where known)."""

    def __init__(
        self, message: str, *, price: int, side: int | None = None, order_id: int | None = None
    ) -> None:
        super().__init__(message)
        self.price = price
        self.side = side
        self.order_id = order_id


class OrderNotFound(BookError, KeyError):
    """The ``order_id`` is not in the book."""

    def __init__(self, message: str, *, order_id: int) -> None:
        super().__init__(message)
        self.order_id = order_id

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "order not found"


class InvalidOrderId(BookError, ValueError):
    """The ``order_id`` is the reserved value -2**63 (the books' empty-slot marker)."""

    def __init__(self, message: str, *, order_id: int) -> None:
        super().__init__(message)
        self.order_id = order_id


class DuplicateOrderId(BookError, ValueError):
    """The ``order_id`` is already in the book (for a replace: the new id)."""

    def __init__(self, message: str, *, order_id: int) -> None:
        super().__init__(message)
        self.order_id = order_id


class OrdersCrossed(BookError):
    """The book would be crossed: ``order_id`` on ``side`` at ``price`` would meet the
    opposite side's best price ``best``."""

    def __init__(self, message: str, *, order_id: int, side: int, price: int, best: int) -> None:
        super().__init__(message)
        self.order_id = order_id
        self.side = side
        self.price = price
        self.best = best


def located(exc: Exception, where: str, offset: int, msg_type: str) -> Exception:
    """A copy of ``exc`` (same class, same data attributes) whose message starts with
    ``where``, carrying ``offset`` and ``msg_type``: how replay errors name their input."""
    detail = exc.args[0] if exc.args else type(exc).__name__
    err = copy.copy(exc)
    err.args = (f"{where}: {detail}",)
    vars(err).update(offset=offset, msg_type=msg_type)
    return err


class ItchFormatError(BookError, ValueError):
    """ITCH bytes are truncated or corrupt; ``offset`` and ``msg_type`` say where."""

    offset: int
    msg_type: str

    def __init__(self, message: str, offset: int, msg_type: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.msg_type = msg_type


class UnknownStockLocate(ItchFormatError):
    """An ITCH book message names a stock ``locate`` that no R, A or F message announced
    (the input is not a whole session, or is corrupt); ``offset`` says where (-1 when
    the book was fed one message with no position)."""

    def __init__(self, locate: int, offset: int, msg_type: str) -> None:
        where = f"ITCH {msg_type!r} message at byte {offset}: " if offset >= 0 else ""
        super().__init__(
            f"{where}stock locate {locate} was never announced (no R, A or F message)",
            offset,
            msg_type,
        )
        self.locate = locate
