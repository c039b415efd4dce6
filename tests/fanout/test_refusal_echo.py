"""Every refusal echoes what it refuses: each entry of a multi-entry subscribe (malformed
ones included: their known fields, bounded), and a refused request's op and id."""

from __future__ import annotations

from client.market import connect, messages, request
from tests.fanout.harness import started, until


async def test_each_refused_entry_of_a_subscribe_echoes_itself() -> None:
    node, _market, url = await started()
    entries = [
        {"channel": "book", "symbol": "X", "depth": 5},
        {"channel": "orders", "symbol": "X"},
        {"channel": "book", "symbol": "X", "depth": "ten"},
        {"channel": "trades", "symbol": "X", "colour": "red"},
        7,
        {"channel": "candles", "symbol": "X", "interval": 2},
        {"channel": "ticker", "symbol": "NOPE", "venue": "SIM"},
        {"channel": "ticker", "symbol": "X"},
    ]
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            await until(stream, "welcome")
            await request(ws, {"op": "subscribe", "id": "multi", "channels": entries})
            answer = await until(stream, "subscribed")
            assert [a["channel"] for a in answer["accepted"]] == ["book", "ticker"]
            refused = answer["refused"]
            echoed = [*entries[1:3], {"channel": "trades", "symbol": "X"}, 7, *entries[5:7]]
            assert [r["request"] for r in refused] == echoed  # known fields only
            assert [r["code"] for r in refused] == [
                "unknown_channel",
                "bad_request",
                "bad_request",
                "bad_request",
                "bad_request",
                "unknown_symbol",
            ]
            assert "channels[2].depth" in refused[1]["reason"]
            assert "colour" in refused[2]["reason"]
            await request(ws, {"op": "dance", "id": 12})
            error = await until(stream, "error")
            assert error["code"] == "unknown_op"
            assert error["request"] == {"op": "dance", "id": 12}
            await request(ws, {"op": "subscribe", "id": 13, "channels": []})
            error = await until(stream, "error")
            assert (error["code"], error["request"]) == (
                "bad_request",
                {"op": "subscribe", "id": 13},
            )
            await ws.send("{not json")
            error = await until(stream, "error")
            assert error["code"] == "bad_json" and "request" not in error
            huge = {"channel": "book", "symbol": "S" * 5000, "depth": [1] * 100}
            await request(ws, {"op": "subscribe", "id": 14, "channels": [huge, [huge]]})
            answer = await until(stream, "subscribed")
            assert [r["request"] for r in answer["refused"]] == [
                {"channel": "book", "symbol": "'" + "S" * 36 + "...", "depth": "a list"},
                "a list",
            ]
    finally:
        await node.stop()
