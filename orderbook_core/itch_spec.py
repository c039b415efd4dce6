"""NASDAQ TotalView-ITCH 5.0 message table shared by the parsers and the writer.

Each message in a file is preceded by a 2-byte big-endian length. Lengths
below are of the message itself (type byte included). All integers are
big-endian; timestamps are 6-byte nanoseconds since midnight; Price(4) has
four implied decimals (1/10000 dollars), Price(8) eight.
"""

from __future__ import annotations

MESSAGE_LENGTHS: dict[str, int] = {
    "S": 12,  # system event
    "R": 39,  # stock directory
    "H": 25,  # stock trading action
    "Y": 20,  # Reg SHO short sale price test restriction
    "L": 26,  # market participant position
    "V": 35,  # MWCB decline level
    "W": 12,  # MWCB status
    "K": 28,  # IPO quoting period update
    "J": 35,  # LULD auction collar
    "h": 21,  # operational halt
    "A": 36,  # add order, no MPID attribution
    "F": 40,  # add order with MPID attribution
    "E": 31,  # order executed
    "C": 36,  # order executed with price
    "X": 23,  # order cancel
    "D": 19,  # order delete
    "U": 35,  # order replace
    "P": 44,  # trade (non-cross)
    "Q": 40,  # cross trade
    "B": 19,  # broken trade
    "I": 50,  # net order imbalance indicator
    "N": 20,  # retail price improvement indicator
    "O": 48,  # direct listing with capital raise price discovery
}

BOOK_MESSAGES = frozenset("AFECXDU")
"""The order-level messages that change an L3 book."""
