"""The order path's I/O: the order-entry WebSocket server, group commit and delivery.

A trader's message goes: session (logon, rate limit, JSON) -> ``TradingVenue.check``
(validation and risk; a refusal is answered at once and changes nothing) ->
``OrderPath.submit`` (applied to the engines at once, appended to the journal) ->
the committer (one fsync for everything appended since the last one) -> the
execution reports to the account's sessions and drop copies, and the public
events to the feed's publisher. Nothing is acknowledged or published before it
is durable, and the books the public sees are the books the traders traded on.

The simulated order flow takes the same path (``Sim`` commands), so a restart
that replays the journal rebuilds exactly the books that were published.

Process-wide settings (the interpreter's switch interval, the collector's thresholds) are
not this module's to make: the process that composes it chooses them (``app/run.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bus.output import FeedOutput
from hub.auth import RateLimit, authenticate
from hub.config import FeedConfig, KafkaConfig, OrdersConfig
from hub.db import migrate
from hub.errors import HubError
from hub.ops import LoopHistogram, bound_port, metrics, ops_response, response, runs
from trading import schema
from trading.checkpoint import TakenState
from trading.feed import MAX_BATCH, continued_epoch, paced_target, publish_start
from trading.journal import Journal
from trading.kafka_log import KafkaLog
from trading.messages import ExecReport, Original, Reject, Sim
from trading.replay import replayed, restore
from trading.risk import Account, demo_accounts, load_accounts
from trading.session import Session, send_json
from trading.simulator import SimulatedExchange
from trading.store import ExecutionStore
from trading.venue import Command, Outcome, TradingVenue

METRICS = metrics("orders")

log = logging.getLogger("hub.orders")

COMMANDS = Counter(
    "hub_orders_commands_total", "Commands applied and journaled", ["kind"], registry=METRICS
)
REJECTS = Counter(
    "hub_orders_rejects_total", "Messages refused before matching", ["reason"], registry=METRICS
)
COMMIT_SECONDS = Histogram(
    "hub_orders_commit_seconds",
    "One group commit: write + fsync of the journal",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
    registry=METRICS,
)
COMMIT_SIZE = Histogram(
    "hub_orders_commit_commands",
    "Commands made durable by one group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=METRICS,
)
ACK_SECONDS = LoopHistogram(  # one observation an order
    "hub_orders_ack_seconds",
    "Order message received until its first report is sent (durable)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.05),
    registry=METRICS,
)
SESSIONS = Gauge(
    "hub_orders_sessions", "Logged-on order-entry sessions", ["kind"], registry=METRICS
)
LOGON_TIMEOUT = 5.0
REPLAY_CHUNK = 5000
RESEND_PAGE = 10_000
"""Most reports one resend request returns (``resend_done`` then says ``more``)."""
RESEND_CHUNK = 200
"""Reports a resend queues before letting other sessions run."""
RESEND_COST = 25
"""Reports resent per rate-limit token: the request's own token pays for the first ones,
the bucket's other tokens (as many as it holds) for the rest of the page."""


@dataclass
class _Pending:
    outcome: Outcome
    to: Session | None = None
    """Only this session gets the reports (a resent acknowledgement); None: everyone's."""
    received: float = 0.0


class OrderPath:
    """The venue with its journal, sessions and committer."""

    def __init__(
        self,
        cfg: OrdersConfig,
        feed: FeedConfig,
        output: FeedOutput,
        accounts: list[Account] | None = None,
        postgres_dsn: str = "",
        kafka: KafkaConfig | None = None,
    ) -> None:
        runs("orders")
        if feed.source != "sim":
            raise HubError(
                "orders.enabled needs feed.source = sim: orders trade on the hub's own venue"
            )
        self.cfg = cfg
        self.feed = feed
        self.output = output
        if accounts is None:
            accounts = load_accounts(Path(cfg.accounts)) if cfg.accounts else demo_accounts()
        self.by_key = {a.key: a for a in accounts}
        self.by_id = {a.id: a for a in accounts}
        exchanges = {s: SimulatedExchange(feed.venue, s, feed.seed) for s in feed.symbols}
        self.venue = TradingVenue(exchanges, accounts)
        self.limits = {a.id: RateLimit(a.limits.rate_per_s) for a in accounts}
        self.journal: Journal | KafkaLog
        if cfg.log == "kafka":
            if kafka is None:
                raise HubError("orders.log = kafka needs Kafka: run hub feed, not hub demo")
            self.journal = KafkaLog(kafka)
        else:
            self.journal = Journal(Path(cfg.journal), fsync=cfg.fsync)
        self.store = ExecutionStore(postgres_dsn, feed.venue, accounts) if postgres_dsn else None
        self.sessions: dict[int, set[Session]] = {a.id: set() for a in accounts}
        self.delivered: dict[int, int] = dict.fromkeys(self.sessions, 0)
        self._batch: list[_Pending] = []
        self._wake = asyncio.Event()
        self.recovered = 0
        self._stopping = False
        self._applied: dict[str, int] = {}
        """Commands applied since the last commit, by kind (``hub_orders_commands_total``)."""
        self._due: tuple[TakenState, int] | None = None
        """A checkpoint taken, waiting for the commands it covers to be committed."""
        self._writing: asyncio.Task[None] | None = None
        """That checkpoint being written, beside the commits."""
        self.port = 0
        """The order-entry port once serving (the configured one, or the one port 0 got)."""

    # --- recovery -------------------------------------------------------------------

    async def recover(self) -> None:
        """Replay the journal into the venue and publish what it produced (consumers drop
        what they already have by seq), before any new command is taken."""
        started = time.perf_counter()
        file = self.journal.path if isinstance(self.journal, Journal) else None
        self.output.epoch = await continued_epoch(
            self.journal.checkpoint,
            bool(self.journal.recovered),
            file,
            self.output,
            self.venue.exchanges.values(),
        )
        if self.journal.checkpoint is not None:
            # The books as of the checkpoint go to the snapshot store; the commands after it
            # are replayed and republished as usual.
            restore(self.venue, self.journal.checkpoint["state"], f"{self.journal.path} checkpoint")
            self.journal.checkpoint = None
        await publish_start(self.output, self.venue.exchanges.values())
        events = []
        for outcome in replayed(self.venue, self.journal, str(self.journal.path)):
            events += outcome.events  # a command today's checks refuse is logged and skipped
            if len(events) >= REPLAY_CHUNK:
                await self.output.publish(events)
                events = []
        await self.output.publish(events)
        self.recovered = len(self.journal.recovered)
        for account, state in self.venue.state.items():
            self.delivered[account] = state.seq
            if self.store is not None:
                for report in state.reports:  # written again: only what is missing lands
                    self.store.put(report)
        self.journal.recovered = []
        log.info(
            "order path recovered",
            extra={
                "journal": str(self.journal.path),
                "commands": self.recovered,
                "seconds": round(time.perf_counter() - started, 3),
                "books": {s: x.book_seq for s, x in self.venue.exchanges.items()},
            },
        )

    # --- the write path -------------------------------------------------------------

    def submit(self, cmd: Command, received: float = 0.0) -> Outcome:
        """Apply a checked command now; its reports and events go out after the commit."""
        outcome = self.venue.apply(cmd)
        self.journal.append(cmd)
        self._take_checkpoint()
        kind = cmd.kind
        self._applied[kind] = self._applied.get(kind, 0) + 1
        self._batch.append(_Pending(outcome, None, received))
        self._wake.set()
        return outcome

    def _resend(self, session: Session, original: ExecReport, received: float) -> None:
        # Through the committer: the original may still be waiting for its commit.
        outcome = Outcome(reports=[(session.account.id, original)])
        self._batch.append(_Pending(outcome, session, received))
        self._wake.set()

    async def committer(self) -> None:
        """Until stopped: make the pending commands durable, then deliver and publish them.
        Stopping commits and delivers what is pending first (never half a batch)."""
        while not (self._stopping and not self._batch):
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, []
            if not batch:
                continue
            applied, self._applied = self._applied, {}
            started = time.perf_counter()
            n = await self.journal.commit()
            if n:
                COMMIT_SECONDS.observe(time.perf_counter() - started)
                COMMIT_SIZE.observe(n)
            for kind, count in applied.items():  # counted a batch at a time: a lock each
                COMMANDS.labels(kind).inc(count)
            events = [e for p in batch for e in p.outcome.events]
            self._deliver(batch)
            await self.output.publish(events)
            due, writing = self._due, self._writing
            if writing is not None and writing.done():
                writing.result()  # a checkpoint that failed stops the committer, as it did inline
            # Written once everything it covers is in the file, beside the commits after it.
            if (
                due is not None
                and writing is None
                and isinstance(self.journal, Journal)
                and (self.journal.in_file >= due[1])
            ):
                self._writing = asyncio.create_task(self._checkpoint(*due), name="checkpoint")
        if self._writing is not None:
            await self._writing  # the journal closes after it

    def _take_checkpoint(self) -> None:
        """When a checkpoint is due: the venue's state now, with the number of commands of
        the journal's generation it covers (every one appended: exactly those applied so
        far). Written once they are all committed; none is taken while one is pending."""
        j = self.journal
        every = self.cfg.checkpoint_every
        if not every or self._due is not None or not isinstance(j, Journal):
            return
        if j.appended >= every:
            state = self.venue.snapshot()
            state["epoch"] = self.output.epoch  # the streams go on under it after a restore
            self._due = (TakenState(state), j.appended)
            j.mark(j.appended)

    async def _checkpoint(self, state: TakenState, covers: int) -> None:
        """Write a checkpoint while commits go on (Journal.write_checkpoint); only then may
        the next be taken, counting from the new generation."""
        assert isinstance(self.journal, Journal)
        started = time.perf_counter()
        await self.journal.write_checkpoint(await state.encoded(), covers)
        self._due = self._writing = None
        log.info(
            "checkpoint written",
            extra={
                "checkpoint": str(self.journal.checkpoint_path),
                "covers": covers,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _deliver(self, batch: list[_Pending]) -> None:
        """Each report encoded once, and each session's reports of the batch queued as one
        item (in order)."""
        now = time.perf_counter()
        out: dict[Session, list[bytes]] = {}
        for p in batch:
            if p.received and p.outcome.reports:
                ACK_SECONDS.observe(now - p.received)
            for account, report in p.outcome.reports:
                encoded = orjson.dumps(report)
                if p.to is not None:
                    out.setdefault(p.to, []).append(encoded)
                    continue
                self.delivered[account] = report["seq"]
                if self.store is not None:
                    self.store.put(report)
                for s in self.sessions.get(account, ()):
                    out.setdefault(s, []).append(encoded)
        for s, messages in out.items():
            s.send_all(messages)

    # --- the simulated flow ---------------------------------------------------------

    async def simulate(self) -> None:
        """The simulated order flow at ``feed.rate``, through the journal like any order."""
        started = time.monotonic()
        done = dict.fromkeys(self.venue.exchanges, 0)
        while True:
            elapsed = time.monotonic() - started
            target = paced_target(elapsed, self.feed.rate, self.feed.max_orders)
            for symbol in self.venue.exchanges:
                n = min(target - done[symbol], MAX_BATCH)
                if n > 0:
                    self.submit(Sim(symbol, n, time.time_ns()))
                    done[symbol] += n
            await asyncio.sleep(0.01)

    # --- sessions -------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in ("/orders", "/dropcopy"):
            return None
        return ops_response(path, self.health) or response(404, b"not found\n", "text/plain")

    async def handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        drop_copy = request.path.split("?", 1)[0] == "/dropcopy"
        session = await self._logon(ws, drop_copy)
        if session is None:
            return
        kind = "drop_copy" if drop_copy else "trader"
        account = session.account.id
        self.sessions[account].add(session)
        SESSIONS.labels(kind).inc()
        writer = asyncio.create_task(session.writer())
        try:
            async for raw in ws:
                if not await self._message(session, raw):
                    break
        except ConnectionClosed:
            pass
        finally:
            self.sessions[account].discard(session)
            SESSIONS.labels(kind).dec()
            session.end()
            with contextlib.suppress(TimeoutError):  # then the peer stopped reading
                await asyncio.wait_for(writer, 5)

    async def _logon(self, ws: ServerConnection, drop_copy: bool) -> Session | None:
        """An API key or a signed JWT, from ``Authorization: Bearer …`` or a first ``logon``
        message (``key`` or ``token``)."""
        request = ws.request
        assert request is not None
        header = request.headers.get("Authorization", "")
        credential = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not credential:
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                credential = schema.credential(await asyncio.wait_for(ws.recv(), LOGON_TIMEOUT))
        account, why = self._authenticate(credential)
        if account is None:
            REJECTS.labels("logon").inc()
            with contextlib.suppress(ConnectionClosed):
                refusal = Reject("logon", why).report("logon")
                await ws.send(orjson.dumps([refusal]).decode())
                await ws.close(1008, "logon failed")
            return None
        session = Session(ws, account, drop_copy)
        send_json(
            session,
            {
                "type": "logon",
                "account": account.id,
                "name": account.name,
                "drop_copy": drop_copy,
                "last_seq": self.delivered[account.id],
                "symbols": [
                    {
                        "symbol": s,
                        "tick_size": x.instrument.tick_size,
                        "lot_size": x.instrument.lot_size,
                    }
                    for s, x in self.venue.exchanges.items()
                ],
            },
        )
        return session

    def _authenticate(self, credential: object) -> tuple[Account | None, str]:
        """(account, "") or (None, why): an API key, or a JWT whose ``sub`` is the account id."""
        return authenticate(
            credential,
            self.by_key.get,
            self._by_subject,
            lambda a: a.key,
            self.cfg.max_token_lifetime_s,
        )

    def _by_subject(self, sub: str) -> Account | None:
        return self.by_id.get(int(sub)) if sub.isdigit() else None

    async def _message(self, session: Session, raw: str | bytes) -> bool:
        """Handle one message; False when the session must end. Every message, whatever
        its kind and even when malformed, takes a token from the account's rate limit;
        rate-limited and malformed ones count towards ``orders.max_rejects``."""
        received = time.perf_counter()
        account = session.account.id
        op, parsed = schema.parse(raw)
        if not self.limits[account].take(time.monotonic()):
            return await self._strike(session, op, Reject("rate_limited", "message rate limit"))
        if isinstance(parsed, Reject):
            return await self._strike(session, op, parsed)
        if op == "resend":
            return await self._resend_since(session, parsed["from_seq"])
        if op == "status":
            answer = self.venue.status(account, parsed)
            if isinstance(answer, Reject):
                return await self._refuse(session, op, answer)
            send_json(session, answer)
            return True
        if session.drop_copy:
            return await self._refuse(session, op, Reject("read_only", "a drop copy only listens"))
        checked = self.venue.check(account, parsed, time.time_ns())
        if isinstance(checked, Reject):
            return await self._refuse(session, op, checked)
        if isinstance(checked, Original):
            self._resend(session, checked.report, received)
            return True
        self.submit(checked, received)
        return True

    async def _strike(self, session: Session, op: str, reject: Reject) -> bool:
        """Refuse a rate-limited or malformed message; past ``orders.max_rejects`` of them,
        close the session (1008) instead."""
        session.rejected += 1
        if session.rejected <= self.cfg.max_rejects:
            return await self._refuse(session, op, reject)
        REJECTS.labels(reject.reason).inc()
        limited = reject.reason == "rate_limited"
        why = "rate limit: too many messages" if limited else "too many malformed messages"
        log.warning("session disconnected", extra={"account": session.account.id, "why": why})
        closing = asyncio.ensure_future(session.ws.close(1008, why))
        # Discard what the client already sent: while its messages sit unread, the reader
        # is paused and the closing handshake could not be heard.
        with contextlib.suppress(ConnectionClosed):
            async for _ in session.ws:
                pass
        await closing
        return False

    async def _refuse(self, session: Session, op: str, reject: Reject) -> bool:
        REJECTS.labels(reject.reason).inc()
        send_json(session, reject.report(op))
        return True

    async def _resend_since(self, session: Session, start: int) -> bool:
        """The account's durable reports from seq ``start``: at most ``RESEND_PAGE`` per
        request and as many as the account's rate-limit tokens pay for (``RESEND_COST``
        each), queued ``RESEND_CHUNK`` at a time as the session's socket takes them with
        other sessions served in between: a resend flood costs its sender, not the other
        traders."""
        account = session.account.id
        last = self.delivered[account]
        kept = self.venue.state[account].reports  # in seq order, gap-free
        if start <= last and (not kept or kept[0]["seq"] > start):
            oldest = kept[0]["seq"] if kept else last + 1
            return await self._refuse(
                session, "resend", Reject("too_old", f"reports before {oldest} are gone")
            )
        wanted = min(last - start + 1, RESEND_PAGE)
        extra = -(-max(0, wanted - RESEND_COST) // RESEND_COST)  # tokens past the request's
        paid = self.limits[account].take_up_to(extra, time.monotonic())
        end = min(last, start + RESEND_PAGE - 1, start + (1 + paid) * RESEND_COST - 1)
        seq = start
        while seq <= end and kept and kept[0]["seq"] <= seq:  # (others may run in between)
            at = seq - kept[0]["seq"]
            for report in itertools.islice(kept, at, at + min(RESEND_CHUNK, end - seq + 1)):
                send_json(session, report)
                seq += 1
            if seq <= end:
                await asyncio.sleep(0)
                await session.backlog(RESEND_CHUNK)
        done = {"from_seq": start, "to_seq": seq - 1, "last_seq": last, "more": seq <= last}
        send_json(session, {"type": "resend_done", **done})
        return True

    # --- running ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "journal": str(self.journal.path),
            "journaled": self.journal.committed,
            "pending": self.journal.pending,
            "recovered": self.recovered,
            "sessions": sum(len(s) for s in self.sessions.values()),
            "books": {s: x.book_seq for s, x in self.venue.exchanges.items()},
            "db_backlog": None if self.store is None else len(self.store.backlog),
        }

    async def start(self) -> Server:
        return await serve(
            self.handle,
            self.cfg.host,
            self.cfg.port,
            process_request=self._process_request,
            max_size=1 << 16,
            compression=None,  # small messages; deflate would cost latency, not bandwidth
        )

    async def run(self) -> None:
        """Recover, then serve order entry, run the simulated flow and commit, until cancelled."""
        if self.store is not None:
            await asyncio.to_thread(migrate, self.store.dsn)
        await self.journal.open()
        await self.recover()
        server = await self.start()
        self.port = bound_port(server)
        log.info(
            "order entry listening",
            extra={"url": f"ws://{self.cfg.host}:{self.port}/orders"},
        )
        committer = asyncio.create_task(self.committer())
        flow = asyncio.create_task(self.simulate())
        recorder = asyncio.create_task(self.store.run()) if self.store is not None else None
        try:
            # Shielded: cancelling the run must not cancel a commit whose write thread goes
            # on; a later write could then land before it and reorder the log.
            await asyncio.gather(asyncio.shield(committer), flow)
        finally:
            flow.cancel()
            if recorder is not None:
                recorder.cancel()
            server.close()
            self._stopping = True
            self._wake.set()
            await asyncio.gather(flow, committer, return_exceptions=True)
            await server.wait_closed()
            await self.journal.aclose()
