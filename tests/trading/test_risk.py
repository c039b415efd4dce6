"""The accounts file: limits resolved per instrument, and every mistake named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hub.errors import HubError
from hub.events import Instrument
from trading.risk import Limits, demo_accounts, is_off, load_accounts, resolve

KEY = "k" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


def test_defaults_and_overrides_resolve_to_integer_units(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[defaults]
max_qty = "10"
max_notional = "1000000"
collar_bps = 500

[[account]]
id = 1001
name = "alice"
key = "{KEY}"
max_qty = "2.5"

[[account]]
id = 1002
name = "bob"
key = "{KEY}b"
admin = true
max_position = "off"
buying_power = "off"
""",
    )
    alice, bob = load_accounts(path)
    assert alice.limits == Limits(max_qty="2.5", max_notional="1000000", collar_bps=500)
    assert bob.limits.max_qty == "10" and bob.admin and not alice.admin
    btc = Instrument("SIM", "BTC-USD", "0.01", "0.00001")
    r = resolve(alice.limits, btc)
    assert r.max_qty == 250_000  # lots of 0.00001
    assert r.max_notional == 1_000_000 * 100 * 100_000  # ticks x lots
    # Left out: the finite default (10,000 base units); said "off": no limit, explicitly.
    assert r.max_position == 10_000 * 100_000 and r.collar_bps == 500
    assert alice.limits.cash() == Decimal("10000000")
    assert resolve(bob.limits, btc).max_position == 0 and bob.limits.cash() is None


def test_every_account_has_finite_limits_unless_one_is_said_to_be_off() -> None:
    """Demo accounts and code that builds ``Limits()`` get the documented defaults."""
    for account in demo_accounts():
        limits = account.limits
        assert limits == Limits()
        assert all(
            not is_off(getattr(limits, name))
            for name in ("max_qty", "max_notional", "max_position", "buying_power")
        )
    btc = Instrument("SIM", "BTC-USD", "0.01", "0.00001")
    r = resolve(Limits(), btc)
    assert (r.max_qty, r.max_position) == (1000 * 100_000, 10_000 * 100_000)
    assert r.max_notional == 1_000_000 * 100 * 100_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[[account]]\nid = 5\nkey = "{KEY}"', "id must be an integer >= 1000"),
        ('[[account]]\nid = 1001\nkey = "short"', "at least 32 characters"),
        (
            f'[[account]]\nid = 1001\nkey = "{KEY}"\n[[account]]\nid = 1001\nkey = "{KEY}x"',
            "account #2: id 1001 or its key is used twice",
        ),
        (f'[[account]]\nid = 1001\nkey = "{KEY}"\nmax_qtty = "1"', "unknown limit 'max_qtty'"),
        (f'[[account]]\nid = 1001\nkey = "{KEY}"\nmax_qty = 5', "max_qty must be a decimal"),
        (f'[[account]]\nid = 1001\nkey = "{KEY}"\nmax_qty = "-1"', "positive decimal"),
        (f'[[account]]\nid = 1001\nkey = "{KEY}"\nmax_qty = "Infinity"', 'or "off"'),
        (f'[[account]]\nid = 1001\nkey = "{KEY}"\nbuying_power = "NaN"', "positive decimal"),
        ('[defaults]\nmax_open_orders = "many"', "[defaults]: max_open_orders must be"),
        ("[defaults]\n", "no [[account]] entries"),
        ("not toml [", "accounts file"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HubError, match=message.replace("[", r"\[").replace("]", r"\]")) as exc:
        load_accounts(path)
    assert str(path) in str(exc.value)


def test_cash_is_kept_in_the_finest_tick_times_lot_as_integers() -> None:
    from trading.risk import CashUnit

    unit = CashUnit.of(
        {
            "BTC-USD": Instrument("SIM", "BTC-USD", "0.01", "0.00001"),
            "X": Instrument("SIM", "X", "0.25", "0.1"),
        }
    )
    assert (unit.places, unit.scale) == (7, {"BTC-USD": 1, "X": 250_000})
    assert unit.units(Decimal("2000.123456789")) == 20_001_234_567  # rounded down to the unit
    assert unit.units(None) is None
    assert unit.text(25_960_000_000) == "2596" and unit.decimal(1) == Decimal("0.0000001")
