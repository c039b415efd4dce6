"""The OpenAPI 3.1 document of the node's REST API (fanout.rest), served at /openapi.json.

Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect) and strict: every object
lists its fields and allows no others, so a test that validates real answers
against them catches a field added to the code and not here (and the reverse).
"""

from __future__ import annotations

from typing import Any

from hub.events import BAR_INTERVALS
from hub.symbology import EQUITY, KINDS

DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["65000.01"]}
NS = {"type": "integer", "minimum": 0, "description": "ns since the Unix epoch"}
SEQ = {"type": "integer", "minimum": 0}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Any], description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return out


HEAD = {
    "venue": {"type": "string"},
    "symbol": {"type": "string", "description": "the venue's own (native) symbol"},
    "canonical": nullable({"type": "string", "description": "the hub's canonical id"}),
}
LISTING = obj(
    {
        "kind": {"type": "string", "enum": [*KINDS, EQUITY]},
        "base": {"type": "string"},
        "quote": {"type": "string"},
        "settle": {"type": "string"},
        "expiry": {"type": "string"},
        "strike": {"type": "string"},
        "right": {"type": "string"},
        "contract_size": {"type": "string"},
        "inverse": {"type": "boolean"},
    },
    'The canonical listing\'s terms (docs/protocol.md, Symbology); "" where none.',
)
INSTRUMENT = obj(
    {
        "venue": HEAD["venue"],
        "symbol": HEAD["symbol"],
        "canonical": HEAD["canonical"],
        "listing": nullable(ref("Listing")),
        "tick_size": nullable(DECIMAL),
        "lot_size": nullable(DECIMAL),
        "status": {
            "type": "string",
            "description": "the feed's last word: live, stale, resynced, halted, trading, closed",
        },
        "synced": {"type": "boolean", "description": "the node's book is in sync"},
        "epoch": SEQ,
        "seq": SEQ,
        "channels": {"type": "array", "items": {"type": "string"}},
    }
)
LEVEL = {
    "type": "array",
    "prefixItems": [ref("Decimal"), ref("Decimal")],
    "minItems": 2,
    "maxItems": 2,
    "description": "[price, size]",
}
BOOK = obj(
    {
        **HEAD,
        "epoch": SEQ,
        "seq": {**SEQ, "description": "the last book update the snapshot contains"},
        "ts_event": NS,
        "depth": {"type": "integer", "minimum": 0, "description": "0: the full book"},
        "bids": {"type": "array", "items": ref("Level")},
        "asks": {"type": "array", "items": ref("Level")},
        "checksum": {"type": "integer", "minimum": 0, "description": "CRC-32 (docs/protocol.md)"},
        "checksum_levels": {"type": "integer", "minimum": 1, "maximum": 10},
    }
)
TRADE = obj(
    {
        "epoch": SEQ,
        "seq": SEQ,
        "trade_id": {"type": "string"},
        "price": ref("Decimal"),
        "size": ref("Decimal"),
        "side": {"type": "string", "enum": ["buy", "sell", "none"]},
        "ts_event": NS,
        "ts_recv": NS,
    }
)
TRADES = obj({**HEAD, "epoch": SEQ, "trades": {"type": "array", "items": ref("Trade")}})
CANDLE = obj(
    {
        "start": NS,
        "open": ref("Decimal"),
        "high": ref("Decimal"),
        "low": ref("Decimal"),
        "close": ref("Decimal"),
        "volume": ref("Decimal"),
        "notional": {
            **ref("Decimal"),
            "description": "sum of price x size: VWAP = notional / volume",
        },
        "trades": {"type": "integer", "minimum": 0},
    }
)
CANDLES = obj(
    {
        **HEAD,
        "interval": {"type": "integer", "enum": list(BAR_INTERVALS)},
        "source": {"type": "string", "enum": ["database", "memory"]},
        "database_error": nullable(
            {"type": "string", "description": "why the database did not answer (source memory)"}
        ),
        "bars": {"type": "array", "items": ref("Candle")},
    }
)
CANDLES["required"].remove("database_error")  # only where the node has a database
TICKER = obj(
    {
        **HEAD,
        "epoch": {**SEQ, "description": "trade epoch of the latest trade"},
        "seq": {**SEQ, "description": "trade seq of the latest trade (0: none)"},
        "ts_event": NS,
        "window_start": NS,
        "open": nullable(ref("Decimal")),
        "high": nullable(ref("Decimal")),
        "low": nullable(ref("Decimal")),
        "last": nullable(ref("Decimal")),
        "change": nullable(ref("Decimal")),
        "change_pct": nullable(ref("Decimal")),
        "volume": ref("Decimal"),
        "notional": ref("Decimal"),
        "trades": {"type": "integer", "minimum": 0},
    },
    "24 h rolling statistics: the 1440 minutes of event time ending with the latest trade's",
)
ERROR = obj(
    {
        "code": {
            "type": "string",
            "enum": [
                "bad_request",
                "unauthenticated",
                "forbidden",
                "not_found",
                "unknown_venue",
                "unknown_symbol",
                "ambiguous_symbol",
                "rate_limited",
                "unavailable",
            ],
        },
        "message": {"type": "string"},
        "choices": {
            "type": "array",
            "items": obj({"venue": {"type": "string"}, "symbol": {"type": "string"}}),
            "description": "ambiguous_symbol: the streams the name picks",
        },
    }
)
ERROR["required"].remove("choices")
SCHEMAS = {
    "Decimal": DECIMAL,
    "Listing": LISTING,
    "Instrument": INSTRUMENT,
    "Instruments": obj({"instruments": {"type": "array", "items": ref("Instrument")}}),
    "Level": LEVEL,
    "Book": BOOK,
    "Trade": TRADE,
    "Trades": TRADES,
    "Candle": CANDLE,
    "Candles": CANDLES,
    "Ticker": TICKER,
    "Error": ERROR,
}


def _param(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": text,
    }


STREAM_PARAMS = [
    _param("venue", "path", {"type": "string"}, "the venue, as /v1/instruments names it"),
    _param(
        "symbol",
        "path",
        {"type": "string"},
        "native symbol or canonical id; percent-encode '/' (XBT%2FUSD)",
    ),
]
ERRORS = {
    "400": "a parameter is malformed or out of range (the message names it)",
    "401": "no valid credential",
    "403": "the key may not use this channel",
    "404": "unknown route, venue (unknown_venue) or symbol on that venue (unknown_symbol)",
    "429": "over the key's messages_per_s (Retry-After)",
    "503": "the stream is syncing or has no instrument data yet (Retry-After)",
}


def _operation(
    op_id: str, summary: str, schema: str, params: list[dict[str, Any]], stream: bool = True
) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": ref("Error")}}}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ref(schema)}}}
    }
    for code, text in ERRORS.items():
        if stream or code in ("400", "401", "429"):
            responses[code] = {"description": text, **error}
    return {
        "get": {
            "operationId": op_id,
            "summary": summary,
            "parameters": [*(STREAM_PARAMS if stream else []), *params],
            "responses": responses,
        }
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    interval = {"type": "integer", "enum": list(BAR_INTERVALS), "default": 60}
    when = {"type": "string", "description": "ns since the Unix epoch, or ISO 8601 (UTC)"}
    paths = {
        "/v1/instruments": _operation(
            "instruments",
            "Every stream of the node: native and canonical symbols, units, status",
            "Instruments",
            [_param("venue", "query", {"type": "string"}, "only this venue's")],
            stream=False,
        ),
        "/v1/book/{venue}/{symbol}": _operation(
            "book",
            "Book snapshot with its seq and epoch",
            "Book",
            [
                _param(
                    "depth",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                    "levels per side (default: the full book)",
                )
            ],
        ),
        "/v1/trades/{venue}/{symbol}": _operation(
            "trades",
            "The latest trades the node holds, oldest first",
            "Trades",
            [
                _param(
                    "limit",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 50, "default": 50},
                    "the latest N",
                )
            ],
        ),
        "/v1/candles/{venue}/{symbol}": _operation(
            "candles",
            "OHLCV bars over a range, from TimescaleDB when the node has it, else memory",
            "Candles",
            [
                _param("interval", "query", interval, "bar interval in seconds"),
                _param(
                    "start",
                    "query",
                    when,
                    "first bar start (inclusive); given: the first `limit` bars from it",
                ),
                _param(
                    "end",
                    "query",
                    when,
                    "bar starts before this (exclusive); without "
                    "start: the last `limit` bars before it",
                ),
                _param(
                    "limit",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 300},
                    "most bars",
                ),
            ],
        ),
        "/v1/ticker/{venue}/{symbol}": _operation(
            "ticker", "24 h rolling open, high, low, last, volume and change", "Ticker", []
        ),
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [{}],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mdhub fanout node REST API",
            "version": "1",
            "description": "Prices and sizes are exact decimal strings; times integer ns. "
            "Same credentials, channels and rate limits as the WebSocket (docs/rest.md).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key or JWT"},
                "token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
        "security": [{}, {"bearer": []}, {"token": []}],
    }
