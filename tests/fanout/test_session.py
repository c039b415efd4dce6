"""The per-connection session without sockets: messages and times in, what to send or do out."""

from __future__ import annotations

from typing import Any

import orjson

from fanout.auth import Grant, Keys
from fanout.delivery import Feed, FeedKey
from fanout.session import Attach, Close, Detach, Output, Session, Shared, State
from fanout.stream import BookStream
from fanout.views import Views
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument

KEY = "desk-key-0123456789abcdef0123456789ab"
DESK = Grant(id="desk", key=KEY, channels=frozenset({"book", "trades"}), max_connections=2)
CFG = FanoutConfig(anonymous=True)


def node(
    cfg: FanoutConfig = CFG, grants: tuple[Grant, ...] = (), seq: int = 10
) -> tuple[Shared, BookStream]:
    """The shared side of a node's sessions with one synced stream SIM:X at ``seq``."""
    anonymous = Grant() if cfg.anonymous else None
    shared = Shared(cfg, Keys(list(grants), anonymous), Views(cfg), "node-1")
    stream = BookStream("SIM", "X")
    stream.instrument = Instrument("SIM", "X", "0.01", "1")
    shared.add_stream(stream)
    assert stream.try_sync(BookSnapshot("SIM", "X", seq, 0, ((100, 5), (99, 2)), ((101, 3),)))
    shared.views.resync(stream)
    return shared, stream


def move(shared: Shared, stream: BookStream, n: int) -> None:
    """n more book updates, applied and handed to the stream's feeds as the node does."""
    for _ in range(n):
        seq = stream.seq + 1
        update = BookUpdate("SIM", "X", seq, seq, seq, ((0, 100, seq),))
        stream.on_update(update)
        shared.views.publish_update(stream, update)


def opened(shared: Shared, credential: str | None = None, now: float = 0.0) -> Session:
    session = Session(shared, now)
    (welcome,) = session.connect(credential, now)
    assert isinstance(welcome, bytes) and orjson.loads(welcome)["type"] == "welcome"
    return session


def sent(outputs: list[Output]) -> list[dict[str, Any]]:
    return [orjson.loads(out) for out in outputs if isinstance(out, bytes)]


def message(out: Output) -> dict[str, Any]:
    assert isinstance(out, bytes)
    return dict(orjson.loads(out))


def ask(session: Session, msg: dict[str, Any], now: float = 1.0) -> list[Output]:
    return session.receive(orjson.dumps(msg).decode(), now, 123)


def book(**entry: Any) -> dict[str, Any]:
    return {"channel": "book", "symbol": "X", **entry}


def test_anonymous_session_opens_at_once_with_a_welcome() -> None:
    shared, _stream = node()
    session = Session(shared, 0.0, deflate=True)
    (welcome,) = sent(session.connect(None, 0.0))
    assert welcome == {"type": "welcome", "node": "node-1", "key": "anonymous", "deflate": True}
    assert session.state is State.OPEN and shared.connections == 1


def test_without_anonymous_access_the_first_message_must_authenticate() -> None:
    shared, _stream = node(FanoutConfig(), (DESK,))
    waiting = Session(shared, 0.0)
    assert waiting.connect(None, 0.0) == [] and waiting.state is State.AUTH
    assert waiting.tick(4.9) == []
    assert waiting.tick(5.0) == [Close(1008, "authentication required: no credential in time")]

    early = Session(shared, 0.0)
    early.connect(None, 0.0)
    assert ask(early, {"op": "ping"}) == [
        Close(1008, "authentication required: send {'op': 'auth'} first")
    ]
    wrong = Session(shared, 0.0)
    wrong.connect(None, 0.0)
    assert ask(wrong, {"op": "auth", "token": "x" * 40}) == [
        Close(1008, "authentication failed: unknown API key")
    ]
    assert Session(shared, 0.0).connect("nope", 0.0) == [
        Close(1008, "authentication failed: unknown API key")
    ]
    assert shared.connections == 0

    good = Session(shared, 0.0)
    good.connect(None, 0.0)
    (welcome,) = sent(ask(good, {"op": "auth", "token": KEY}))
    assert welcome["key"] == "desk" and good.state is State.OPEN
    (again,) = sent(ask(good, {"op": "auth", "token": KEY, "id": 7}))
    assert (again["code"], again["id"]) == ("bad_request", 7)


def test_connection_limits_per_key_and_per_node_free_up_when_a_session_ends() -> None:
    shared, _stream = node(FanoutConfig(anonymous=True, max_connections=3), (DESK,))
    first, _second = opened(shared, KEY), opened(shared, KEY)
    too_many = [Close(1013, "too many connections; try later or elsewhere")]
    assert Session(shared, 0.0).connect(KEY, 0.0) == too_many  # the key's 2
    first.ended()
    opened(shared, KEY)
    opened(shared)  # anonymous: only the node's cap
    assert Session(shared, 0.0).connect(None, 0.0) == too_many
    assert (shared.connections, shared.per_key) == (3, {"desk": 2, "anonymous": 1})


def test_rate_limit_refuses_past_the_burst_then_recovers() -> None:
    shared, _stream = node(grants=(Grant(id="slow", key=KEY, messages_per_s=1),))
    session = opened(shared, KEY, now=0.0)
    answers = [sent(ask(session, {"op": "ping", "id": i}, now=0.0))[0] for i in range(3)]
    assert [a["type"] for a in answers] == ["pong", "pong", "error"]
    assert answers[0]["ts"] == 123
    assert answers[2]["code"] == "rate_limited"
    assert sent(ask(session, {"op": "ping"}, now=1.0))[0]["type"] == "pong"


def test_a_client_that_keeps_sending_bad_requests_is_closed() -> None:
    shared, _stream = node(FanoutConfig(anonymous=True, max_errors=3))
    session = opened(shared)
    codes = [sent(session.receive("{", 1.0, 0))[0]["code"] for _ in range(3)]
    assert codes == ["bad_json"] * 3
    assert session.receive(b"\x00", 2.0, 0) == [Close(1008, "too many bad requests (4 in 10 s)")]
    assert session.state is State.CLOSED and ask(session, {"op": "ping"}) == []
    # Errors older than the window no longer count.
    later = opened(shared)
    for t in (0.0, 1.0, 2.0, 20.0):
        assert sent(later.receive("[", t, 0))[0]["type"] == "error"


def test_subscribe_answers_at_once_and_sets_up_snapshots_one_at_a_time() -> None:
    shared, stream = node()
    session = opened(shared)
    out = ask(session, {"op": "subscribe", "id": 1, "channels": [book(), book(depth=1)]})
    (answer,) = sent(out)
    assert answer["type"] == "subscribed" and answer["id"] == 1
    # The last entry for a subscription wins: one book, the top-1 view.
    assert answer["accepted"] == [
        {"channel": "book", "venue": "SIM", "symbol": "X"},
        {"channel": "book", "venue": "SIM", "symbol": "X", "depth": 1},
    ]
    assert session.setting_up and session.feeds == {}
    attach, snapshot = session.set_up()
    view = shared.views.feeds[FeedKey("book", "SIM", "X", 1)]
    assert attach == Attach(view) and view.users == 1
    msg = message(snapshot)
    assert (msg["type"], msg["seq"], msg["bids"], msg["asks"]) == (
        "snapshot",
        stream.seq,
        [["1.00", "5"]],
        [["1.01", "3"]],
    )
    assert not session.setting_up and session.set_up() == []


def test_refusals_name_each_entry_and_keep_the_rest() -> None:
    shared, _stream = node(grants=(DESK,))
    session = opened(shared, KEY)
    out = ask(
        session,
        {
            "op": "subscribe",
            "channels": [
                {"channel": "bbo", "symbol": "X"},
                {"channel": "book", "symbol": "Y"},
                {"channel": "nope", "symbol": "X"},
                {"channel": "trades", "symbol": "X", "venue": "SIM"},
            ],
        },
    )
    (answer,) = sent(out)
    assert [r["code"] for r in answer["refused"]] == [
        "forbidden",
        "unknown_symbol",
        "unknown_channel",
    ]
    assert answer["refused"][0]["request"] == {"channel": "bbo", "symbol": "X"}
    assert [a["channel"] for a in answer["accepted"]] == ["trades"]


def test_subscriptions_past_the_grants_limit_are_refused() -> None:
    shared, _stream = node(grants=(Grant(id="one", key=KEY, max_subscriptions=1),))
    session = opened(shared, KEY)
    entries = [book(), {"channel": "trades", "symbol": "X"}]
    (answer,) = sent(ask(session, {"op": "subscribe", "channels": entries}))
    assert [r["code"] for r in answer["refused"]] == ["too_many_subscriptions"]
    assert answer["refused"][0]["reason"] == "at most 1 per connection"


def test_unsubscribe_detaches_and_frees_a_view_with_its_last_holder() -> None:
    shared, _stream = node()
    session = opened(shared)
    ask(session, {"op": "subscribe", "channels": [book(depth=2, checksum=True)]})
    (attach, _snapshot) = session.set_up()
    assert isinstance(attach, Attach)
    view = attach.feed
    assert shared.views.views == 1
    detach, answer = ask(session, {"op": "unsubscribe", "id": 2, "channels": [book()]})
    assert detach == Detach(view)
    assert sent([answer])[0]["type"] == "unsubscribed"
    assert shared.views.views == 0 and view.key not in shared.views.feeds
    assert session.feeds == {}


def test_resume_replays_from_history_or_falls_back_to_a_snapshot() -> None:
    shared, stream = node(seq=10)
    move(shared, stream, 5)
    session = opened(shared)
    out = ask(session, {"op": "subscribe", "channels": [book(resume_from=12)]})
    full = shared.views.base(stream)
    assert out[0] == Attach(full)
    answer, *replayed = sent(out)
    assert answer["accepted"][0]["resume"] == "replayed"
    assert answer["accepted"][0]["replayed"] == 3
    assert [m["seq"] for m in replayed] == [13, 14, 15]
    assert not session.setting_up

    # Further back than the history (it starts at the snapshot, seq 10): a snapshot.
    late = opened(shared)
    (answer,) = sent(ask(late, {"op": "subscribe", "channels": [book(resume_from=5)]}))
    assert answer["accepted"][0]["resume"] == "snapshot"
    attach, snapshot = late.set_up()
    assert attach == Attach(full) and message(snapshot)["seq"] == 15


def test_a_view_set_up_after_updates_it_skipped_starts_from_the_book() -> None:
    shared, stream = node(seq=10)
    session = opened(shared)
    ask(session, {"op": "subscribe", "channels": [book(depth=1)]})
    move(shared, stream, 3)  # the held view has no target yet: it skips these
    attach, snapshot = session.set_up()
    assert isinstance(attach, Attach) and attach.feed.seq == 13
    msg = message(snapshot)
    assert (msg["seq"], msg["bids"]) == (13, [["1.00", "13"]])


def test_idle_session_is_closed_and_any_message_keeps_it_open() -> None:
    shared, _stream = node(FanoutConfig(anonymous=True, client_timeout_s=30))
    session = opened(shared, now=0.0)
    assert session.tick(29.0) == []
    ask(session, {"op": "ping"}, now=29.0)
    assert session.tick(59.0) == []
    assert session.tick(59.5) == [Close(1008, "idle: no message from the client in 30 s")]


def test_list_names_the_streams_and_ending_gives_everything_back() -> None:
    shared, _stream = node()
    session = opened(shared)
    (streams,) = sent(ask(session, {"op": "list", "id": "l"}))
    assert [(s["venue"], s["symbol"], s["seq"]) for s in streams["streams"]] == [("SIM", "X", 10)]
    entries = [book(), {"channel": "trades", "symbol": "X"}, book(symbol="X", depth=3)]
    ask(session, {"op": "subscribe", "channels": entries})
    session.set_up()  # one set up, one still waiting
    assert session.setting_up
    held: list[Feed] = list(shared.views.feeds.values())
    out = session.ended()
    assert [type(o) for o in out] == [Detach]
    assert all(f.users == 0 for f in held)
    assert shared.views.views == 0 and shared.connections == 0


def test_a_symbol_on_two_venues_needs_a_venue_and_l3_needs_orders() -> None:
    shared, _stream = node()
    other = BookStream("ALT", "X")
    shared.add_stream(other)
    session = opened(shared)
    entries = [book(), book(venue="ALT"), {"channel": "l3", "symbol": "X", "venue": "SIM"}]
    (answer,) = sent(ask(session, {"op": "subscribe", "channels": entries}))
    assert [r["code"] for r in answer["refused"]] == ["ambiguous_symbol", "unavailable"]
    assert answer["accepted"] == [{"channel": "book", "venue": "ALT", "symbol": "X"}]
    # ALT:X is still syncing: its subscriber is told so instead of an empty snapshot.
    attach, status = session.set_up()
    assert attach == Attach(shared.views.base(other))
    assert (message(status)["type"], message(status)["state"]) == ("status", "stale")
