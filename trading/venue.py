"""The hub's own venue, sans-I/O: traders' commands through risk checks into the matching
engines of the simulated exchange, execution reports out, public market data out.

Two steps per message, so that the durable log only ever holds what changed state:

- ``check(account, message, ts)`` validates and risk-checks without changing anything.
  A refusal is a ``Reject`` (reason code and text, no sequence number): it never
  reaches a book or the log. Anything else is a ``Command`` (``trading/messages.py``):
  a typed record, what the journal holds.
- ``apply(command)`` changes state and returns an ``Outcome``: the execution reports
  per account (each with that account's gapless ``seq``) and the public events
  (trades, book updates, statuses) with the stream's own gapless seqs.

``apply`` is deterministic: the same commands in the same order give the same
state, reports and events, which is how a restart rebuilds everything from the
log. The simulated order flow goes through the same door (``Sim`` commands), so
the books after a restart are exactly the books before it.

Money is integers here too: buying power is kept in the venue's cash unit (the finest
tick x lot of its symbols), so a fill moves it by ticks x lots x the symbol's scale;
``Decimal`` only turns the accounts file's buying power into units and units back into
text for a refusal (``risk.CashUnit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hub.events import Event, Status
from orderbook_core.engine_types import EngineEvent, ExecEvent, ExecType, OrderType
from orderbook_core.engine_types import Event as EngineKind
from trading.accounts import CLOSED_KEPT, AccountState, Order
from trading.checks import (
    INT64_MAX,
    Replaced,
    bounds_problem,
    field_problem,
    limits_problem,
    replay_problem,
)
from trading.journal import decode
from trading.messages import (
    CLOSED_EXECS,
    ENGINE_REASONS,
    EXEC_NAMES,
    NEW_FIELDS,
    SIDE_NAMES,
    SIDES,
    STPS,
    SYMBOL_STATES,
    TIFS,
    TYPE_NAMES,
    TYPES,
    Cancel,
    Command,
    ExecReport,
    Kill,
    MassCancel,
    New,
    Original,
    Reject,
    Replace,
    SetState,
    Sim,
    StatusReport,
    choice,
    fingerprint,
    units,
)
from trading.risk import Account, CashUnit, Limits, RiskLimits
from trading.simulator import SimulatedExchange

TRADER_ORDER_IDS = 10**12
"""Trader orders are numbered from here; the simulated flow's ids stay far below."""
ICEBERG_SLICES = 1000
"""Most slices an iceberg may show (the engine's limit too): a taker meets at most that many
trades per iceberg, so one order cannot make one command produce millions of events."""


@dataclass
class Outcome:
    reports: list[tuple[int, ExecReport]] = field(default_factory=list)
    """(account, execution report) in the order they happened."""
    events: list[Event] = field(default_factory=list)


class TradingVenue:
    """Risk checks, matching and reports for traders; public events for everyone."""

    def __init__(
        self,
        exchanges: Mapping[str, SimulatedExchange],
        accounts: Iterable[Account],
        risk: RiskLimits | None = None,
        closed_kept: int = CLOSED_KEPT,
    ) -> None:
        self.closed_kept = max(1, closed_kept)
        """Closed orders kept per account: the idempotency window (``trading/accounts.py``)."""
        self.exchanges = dict(exchanges)
        self.accounts = {a.id: a for a in accounts}
        self.risk = risk or RiskLimits()
        self.cash_unit = CashUnit.of({s: x.instrument for s, x in self.exchanges.items()})
        cash = self.cash_unit.units
        self.state = {a: AccountState(cash=cash(x.limits.cash())) for a, x in self.accounts.items()}
        self.units = {s: (x.instrument.tick, x.instrument.lot) for s, x in self.exchanges.items()}
        """(tick, lot) units per symbol, looked up once."""
        self.symbol_state = dict.fromkeys(self.exchanges, "open")
        self.orders: dict[int, Order] = {}
        """Trader orders by order id (unique across symbols)."""
        self.next_order_id = TRADER_ORDER_IDS
        self.commands = 0

    def buying_power(self, account: int) -> Decimal | None:
        """The account's buying power left, in quote currency (None: no limit)."""
        cash = self.state[account].cash
        return None if cash is None else self.cash_unit.decimal(cash)

    # --- checks: no state changes -------------------------------------------------------

    def check(
        self, account: int, message: Mapping[str, Any], ts: int
    ) -> Command | Reject | Original:
        """Validate and risk-check one message of an authenticated account."""
        op = message.get("op")
        if op == "new":
            return self._check_new(account, message, ts)
        if op == "cancel":
            found = self._find(account, message)
            if isinstance(found, Reject):
                return found
            return Cancel(account, ts, found.symbol, found.order_id)
        if op == "replace":
            return self._check_replace(account, message, ts)
        if op == "mass_cancel":
            symbol = message.get("symbol")
            if symbol is not None and (not isinstance(symbol, str) or symbol not in self.exchanges):
                return Reject("unknown_symbol", f"unknown symbol {symbol!r}")
            return MassCancel(account, ts, symbol)
        if op == "symbol_state":
            if not self.accounts[account].admin:
                return Reject("not_permitted", "only an admin account changes trading states")
            symbol, state = message.get("symbol"), message.get("state")
            return self.set_symbol_state(str(symbol), str(state), ts)
        if op == "kill_switch":
            on = message.get("on")
            if not isinstance(on, bool):
                return Reject("bad_field", "kill_switch needs 'on': true or false")
            return Kill(account, ts, on)
        return Reject("bad_message", f"unknown op {op!r}")

    def set_symbol_state(self, symbol: str, state: str, ts: int) -> Command | Reject:
        """An operator's trading-state change (open, halted, closed), as a command."""
        if symbol not in self.exchanges:
            return Reject("unknown_symbol", f"unknown symbol {symbol!r}")
        if state not in SYMBOL_STATES:
            return Reject("bad_field", f"state must be one of {', '.join(SYMBOL_STATES)}")
        return SetState(symbol, state, ts)

    def _check_new(
        self, account: int, m: Mapping[str, Any], ts: int
    ) -> Command | Reject | Original:
        cl = m.get("cl_ord_id")
        if not isinstance(cl, str) or not cl or len(cl) > 64:
            return Reject("bad_field", "cl_ord_id must be a string of 1 to 64 characters")
        acct = self.state[account]
        fp = fingerprint(m)
        seen = acct.orders_by_cl.get(cl)
        if seen is not None:
            if seen[2] == fp:
                return Original(acct.first_reports[cl])
            return Reject("duplicate_cl_ord_id", f"cl_ord_id {cl!r} was used for another order", cl)
        try:
            cmd = self._parse_new(account, m, cl, ts, fp)
        except ValueError as exc:
            return Reject("bad_field", str(exc), cl)
        if isinstance(cmd, Reject):
            return cmd
        problem = limits_problem(self, account, cmd) or bounds_problem(self, account, cmd)
        if problem is not None:
            return Reject(problem[0], problem[1], cl)
        return cmd

    def _parse_new(
        self, account: int, m: Mapping[str, Any], cl: str, ts: int, fp: str
    ) -> New | Reject:
        symbol = m.get("symbol")
        x = self.exchanges.get(symbol) if isinstance(symbol, str) else None
        if x is None or not isinstance(symbol, str):
            return Reject("unknown_symbol", f"unknown symbol {symbol!r}", cl)
        state = self.symbol_state[symbol]
        if state != "open":
            return Reject(f"symbol_{state}", f"{symbol} is {state}", cl)
        if self.state[account].killed:
            return Reject("kill_switch", "the account's kill switch is on", cl)
        side = choice(m, "side", SIDES, None)
        order_type = choice(m, "type", TYPES, "limit")
        inst = x.instrument
        qty = units(m, "qty", inst.lot, required=True)
        if qty <= 0:
            raise ValueError("qty must be positive")
        needs_price = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        price = units(m, "price", inst.tick, required=needs_price)
        if needs_price and price <= 0:
            raise ValueError("price must be positive")
        if not needs_price and "price" in m:
            raise ValueError(f"a {TYPE_NAMES[order_type]} order has no price")
        needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        stop = units(m, "stop_price", inst.tick, required=needs_stop)
        if needs_stop and stop <= 0:
            raise ValueError("stop_price must be positive")
        display = units(m, "display_qty", inst.lot, required=False)
        if display < 0 or display > qty:
            raise ValueError("display_qty must be between 0 and qty")
        if display and (qty - 1) // display >= ICEBERG_SLICES:
            raise ValueError(f"display_qty must be at least qty / {ICEBERG_SLICES}")
        if min(qty, price, stop, display) < 0 or max(qty, price, stop, display) > INT64_MAX:
            for name, value, unit in (
                ("qty", qty, inst.lot),
                ("price", price, inst.tick),
                ("stop_price", stop, inst.tick),
                ("display_qty", display, inst.lot),
            ):
                problem = field_problem(name, value, unit)
                if problem is not None:
                    raise ValueError(problem)
        post_only = m.get("post_only", False)
        if not isinstance(post_only, bool):
            raise ValueError("post_only must be true or false")
        if not NEW_FIELDS.issuperset(m):
            unknown = set(m) - NEW_FIELDS
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return New(
            account,
            ts,
            cl,
            symbol,
            side,
            int(order_type),
            price,
            qty,
            int(choice(m, "tif", TIFS, "gtc")),
            post_only,
            display,
            stop,
            int(choice(m, "stp", STPS, "cancel_newest")),
            fp,
        )

    def _find(self, account: int, m: Mapping[str, Any], open_only: bool = True) -> Order | Reject:
        """The order a cancel, replace or status names (by orig_cl_ord_id or order_id)."""
        if "orig_cl_ord_id" in m:
            orig = m["orig_cl_ord_id"]
            seen = self.state[account].orders_by_cl.get(orig) if isinstance(orig, str) else None
            if seen is None:
                return Reject("unknown_order", f"no order with cl_ord_id {orig!r}")
            oid = seen[1]
        elif "order_id" in m:
            try:
                oid = int(m["order_id"])
            except (TypeError, ValueError, OverflowError):
                return Reject("bad_field", "order_id must be an order id")
        else:
            return Reject("bad_field", "name the order: orig_cl_ord_id or order_id")
        order = self.orders.get(oid)
        if order is None:
            return Reject("unknown_order", f"no order {oid}")
        if order.account != account:
            return Reject("not_owner", "the order belongs to another account")
        if open_only and not order.open:
            return Reject("too_late", "the order is no longer open")
        return order

    def _check_replace(self, account: int, m: Mapping[str, Any], ts: int) -> Command | Reject:
        found = self._find(account, m)
        if isinstance(found, Reject):
            return found
        inst = self.exchanges[found.symbol].instrument
        try:
            # Given means given: "0" is refused below, never read as "unchanged".
            price = units(m, "price", inst.tick, required=False)
            qty = units(m, "qty", inst.lot, required=False)
        except ValueError as exc:
            return Reject("bad_field", str(exc))
        price = price if m.get("price") is not None else found.price
        qty = qty if m.get("qty") is not None else found.leaves
        if price <= 0 or qty <= 0:
            return Reject(
                "bad_field", "price and qty must be positive (to remove an order, cancel it)"
            )
        too_big = field_problem("qty", qty, inst.lot) or field_problem("price", price, inst.tick)
        if too_big is not None:
            return Reject("bad_field", too_big)
        engine_order = self.exchanges[found.symbol].engine.order(found.order_id)
        display = engine_order.display if engine_order is not None else 0
        if display and (qty - 1) // display >= ICEBERG_SLICES:
            return Reject("bad_field", f"qty must be at most display_qty x {ICEBERG_SLICES}")
        if self.state[account].killed:
            return Reject("kill_switch", "the account's kill switch is on")
        if self.symbol_state[found.symbol] != "open":
            state = self.symbol_state[found.symbol]
            return Reject(f"symbol_{state}", f"{found.symbol} is {state}")
        # The replaced order must pass the same limits as a new one of that price and size.
        as_new = Replaced(found.symbol, found.side, found.order_type, price, qty)
        problem = limits_problem(self, account, as_new, found) or bounds_problem(
            self, account, as_new, found
        )
        if problem is not None:
            return Reject(problem[0], problem[1], found.cl_ord_id)
        return Replace(account, ts, found.symbol, found.order_id, price, qty)

    def reference_price(self, symbol: str) -> int:
        """Last trade price, else the mid, else 0 (no reference: collars do not apply)."""
        engine = self.exchanges[symbol].engine
        if engine.last_price:
            return engine.last_price
        bid, ask = engine.best_bid(), engine.best_ask()
        if bid is not None and ask is not None:
            return (bid[0] + ask[0]) // 2
        return 0

    # --- apply: the only state changes --------------------------------------------------

    def apply(self, cmd: Command) -> Outcome:
        """Run one logged command; deterministic (a restart replays the log through here).
        A command ``check`` made cannot fail here: every number in it fits the engine."""
        out = Outcome()
        ts = cmd.ts
        if isinstance(cmd, Sim):
            x = self.exchanges[cmd.symbol]
            for _ in range(cmd.n):
                out.events += x.step(ts)
        elif isinstance(cmd, New):
            self._new(cmd, out)
        elif isinstance(cmd, Cancel):
            engine = self.exchanges[cmd.symbol].engine
            self._publish(cmd.symbol, engine.cancel(cmd.order_id, cmd.account), ts, out)
        elif isinstance(cmd, Replace):
            engine = self.exchanges[cmd.symbol].engine
            log = engine.replace(cmd.order_id, cmd.account, cmd.price, cmd.qty)
            self._publish(cmd.symbol, log, ts, out)
        elif isinstance(cmd, MassCancel):
            self._mass_cancel(cmd.account, [cmd.symbol] if cmd.symbol else None, ts, out)
        elif isinstance(cmd, Kill):
            self.state[cmd.account].killed = cmd.on
            if cmd.on:
                self._mass_cancel(cmd.account, None, ts, out)
        else:
            self.symbol_state[cmd.symbol] = cmd.state
            inst = self.exchanges[cmd.symbol].instrument
            trading = "trading" if cmd.state == "open" else "halted"
            out.events.append(Status(inst.venue, inst.symbol, trading, cmd.state, ts, ts))
        self.commands += 1
        return out

    def _mass_cancel(self, account: int, symbols: list[str] | None, ts: int, out: Outcome) -> None:
        for symbol in symbols or list(self.exchanges):
            self._publish(symbol, self.exchanges[symbol].engine.mass_cancel(account), ts, out)

    def replay(self, record: object) -> tuple[Outcome, Reject | None]:
        """One record read back from the journal or log: decoded (``journal.decode``) and
        re-checked by today's int64 rules (``checks.replay_problem``) before it is applied;
        refused, it changes nothing, except that a refused ``New`` keeps the order id and
        the one report its acknowledgement had (``_refused``). Never raises, whatever JSON
        value it is given."""
        try:
            cmd = decode(record)
        except ValueError as exc:
            return Outcome(), Reject("malformed", str(exc))
        problem = replay_problem(self, cmd)
        if problem is None:
            return self.apply(cmd), None
        out = Outcome()
        if isinstance(cmd, New) and problem[0] == "size_limit":
            self._refused(cmd, out)
        cl = cmd.cl_ord_id if isinstance(cmd, New) else ""
        return out, Reject(problem[0], problem[1], cl)

    def _new(self, cmd: New, out: Outcome) -> None:
        oid = self.next_order_id
        symbol = cmd.symbol
        # The engine first: should it raise, nothing here has changed (no id taken).
        log = self.exchanges[symbol].engine.new_order(
            oid,
            cmd.account,
            cmd.side,
            cmd.type,
            cmd.price,
            cmd.qty,
            cmd.tif,
            cmd.post_only,
            cmd.display,
            cmd.stop,
            cmd.stp,
        )
        self.next_order_id = oid + 1
        self.orders[oid] = Order(
            cmd.account, cmd.cl_ord_id, symbol, oid, cmd.side, cmd.type, cmd.price, cmd.qty
        )
        self._publish(symbol, log, cmd.ts, out)
        key = str(oid)
        first = next((r for _a, r in out.reports if r["order_id"] == key), None)
        assert first is not None, "the engine reports every new order"
        self.state[cmd.account].known(cmd.cl_ord_id, symbol, oid, cmd.fingerprint, first)

    def _refused(self, cmd: New, out: Outcome) -> None:
        """A journaled new order that today's int64 bounds refuse (written by a venue that
        did not have them): it keeps its order id, so every later id stays the one that was
        acknowledged, and is reported cancelled with reason ``replay_refused`` in place of
        its acknowledgement, so the account's later seqs stay too."""
        oid = self.next_order_id
        self.next_order_id = oid + 1
        symbol, account = cmd.symbol, cmd.account
        order = Order(account, cmd.cl_ord_id, symbol, oid, cmd.side, cmd.type, cmd.price, 0)
        self.orders[oid] = order
        report = self.refuse_order(oid, cmd.ts)
        assert report is not None, "a trader order always has a report"
        out.reports.append((account, report))
        self.state[account].known(cmd.cl_ord_id, symbol, oid, cmd.fingerprint, report)

    def refuse_order(self, oid: int, ts: int) -> ExecReport | None:
        """Close a trader's order that replay or a checkpoint had to leave out of the book:
        reported cancelled with reason ``replay_refused`` (None for the simulated flow's)."""
        order = self.orders.get(oid)
        if order is None:
            return None
        closed = (int(ExecType.CANCELLED), order.side, order.price, 0, 0, 0, order.cum, 0)
        cancelled = ExecEvent(EngineKind.EXEC, 0, oid, order.account, *closed)
        report = self._exec(order.symbol, cancelled, ts)
        assert report is not None
        report["reason"] = "replay_refused"
        return report

    def _publish(self, symbol: str, log: Sequence[EngineEvent], ts: int, out: Outcome) -> None:
        """The public events and the traders' reports of one engine command's events."""
        out.events += self.exchanges[symbol].publish(log, ts)
        for e in log:
            if isinstance(e, ExecEvent):
                report = self._exec(symbol, e, ts)
                if report is not None:
                    out.reports.append((e.account, report))

    def _exec(self, symbol: str, e: ExecEvent, ts: int) -> ExecReport | None:
        oid, account, side, price = e.order_id, e.account, e.side, e.price
        last_qty, last_price, leaves, cum = e.last_qty, e.last_price, e.leaves_qty, e.cum_qty
        order = self.orders.get(oid)
        if order is None:
            return None  # the simulated flow's own orders
        acct = self.state[account]
        acct.release(order)  # counted again below, as it is now, if it is still open
        order.leaves, order.cum = leaves, cum
        order.price = price or order.price
        if e.exec_type in CLOSED_EXECS:
            if order.open:
                acct.close(oid, self.orders, self.closed_kept)
            order.open = False
        else:
            acct.hold(order)
        if last_qty:
            delta = last_qty if side == 0 else -last_qty
            acct.positions[symbol] = acct.positions.get(symbol, 0) + delta
            if acct.cash is not None:
                acct.cash -= delta * last_price * self.cash_unit.scale[symbol]
        tick, lot = self.units[symbol]
        acct.seq += 1
        report: ExecReport = {
            "type": "exec",
            "seq": acct.seq,
            "account": account,
            "cl_ord_id": order.cl_ord_id,
            "order_id": str(oid),
            "symbol": symbol,
            "exec_type": EXEC_NAMES[e.exec_type],
            "side": SIDE_NAMES[side],
            "order_type": TYPE_NAMES[order.order_type],
            "price": tick.to_str(price) if price else None,
            "last_qty": lot.to_str(last_qty),
            "last_price": tick.to_str(last_price) if last_qty else None,
            "leaves_qty": lot.to_str(leaves),
            "cum_qty": lot.to_str(cum),
            "reason": ENGINE_REASONS[e.reason] if e.reason else None,
            "position": lot.to_str(acct.positions.get(symbol, 0)),
            "ts": ts,
        }
        acct.reports.append(report)
        return report

    # --- checkpoints --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole venue as JSON-able data: ``restore`` into a venue built with the same
        symbols and accounts continues exactly (the log after it replays the same). It
        shares live objects with the venue: serialize it before applying anything else."""
        return {
            "commands": self.commands,
            "next_order_id": self.next_order_id,
            "symbol_state": dict(self.symbol_state),
            "exchanges": {s: x.state() for s, x in self.exchanges.items()},
            "orders": [o.fields() for o in self.orders.values()],
            "accounts": {
                str(a): {
                    "seq": st.seq,
                    "reports": list(st.reports),
                    "killed": st.killed,
                    "positions": st.positions,
                    "cash": st.cash,
                    "open": [oid for (_s, oid) in st.open_orders],
                    "by_cl": {cl: (*v, st.first_reports[cl]) for cl, v in st.orders_by_cl.items()},
                    "closed": list(st.closed),
                }
                for a, st in self.state.items()
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.commands = data["commands"]
        self.next_order_id = data["next_order_id"]
        self.symbol_state = dict(data["symbol_state"])
        for symbol, state in data["exchanges"].items():
            self.exchanges[symbol].restore(state)
        self.orders = {fields[3]: Order(*fields) for fields in data["orders"]}
        for key, saved in data["accounts"].items():
            st = self.state[int(key)]
            st.seq = saved["seq"]
            st.reports.clear()
            st.reports.extend(saved["reports"])
            st.killed = saved["killed"]
            st.positions = dict(saved["positions"])
            st.cash = saved["cash"]
            st.open_orders, st.exposure = {}, {}
            for oid in saved["open"]:
                st.hold(self.orders[oid])
            st.orders_by_cl, st.first_reports = {}, {}
            for cl, (symbol, oid, fp, first) in saved["by_cl"].items():
                st.known(cl, symbol, oid, fp, first)
            st.restore_closed(saved.get("closed"), self.orders, int(key), self.closed_kept)

    # --- queries ---------------------------------------------------------------------

    def reports_since(self, account: int, seq: int) -> list[ExecReport]:
        """The account's reports with ``seq`` >= ``seq`` that are still kept."""
        return [r for r in self.state[account].reports if r["seq"] >= seq]

    def status(self, account: int, m: Mapping[str, Any]) -> StatusReport | Reject:
        """An order's current state (open or not), for the order-status query."""
        found = self._find(account, m, open_only=False)
        if isinstance(found, Reject):
            return found
        inst = self.exchanges[found.symbol].instrument
        return {
            "type": "status",
            "cl_ord_id": found.cl_ord_id,
            "order_id": str(found.order_id),
            "symbol": found.symbol,
            "side": SIDE_NAMES[found.side],
            "open": found.open,
            "price": inst.tick.to_str(found.price) if found.price else None,
            "leaves_qty": inst.lot.to_str(found.leaves),
            "cum_qty": inst.lot.to_str(found.cum),
        }


__all__ = [
    "Account",
    "AccountState",
    "Command",
    "Limits",
    "Order",
    "Original",
    "Outcome",
    "Reject",
    "TradingVenue",
]
