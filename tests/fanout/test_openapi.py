"""/openapi.json: a valid OpenAPI 3.1 document; every route it names is served and every
route served is in it; real answers of a node, errors included, fit its schemas."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from fanout.openapi import document
from fanout.rest import PARAMS, ROUTES
from tests.fanout.restclient import get, rest_node

T0 = 1_795_000_020 * 10**9


def check(doc: dict[str, Any], schema: dict[str, Any], body: Any) -> None:
    """Validate ``body`` against a schema of the document (its $refs resolved in it)."""
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


def response_schema(doc: dict[str, Any], route: str, status: int) -> dict[str, Any]:
    answer = doc["paths"][route]["get"]["responses"][str(status)]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    validate(doc)  # raises on any structural error
    assert doc["openapi"] == "3.1.0"
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert schema, name


def test_documented_routes_are_the_served_ones_with_their_parameters() -> None:
    doc = document()
    assert sorted(doc["paths"]) == sorted(ROUTES)
    assert {r.split("/")[2] for r in ROUTES if r.startswith("/v1/")} == set(PARAMS)
    for route, item in doc["paths"].items():
        if route == "/openapi.json":
            continue
        name = route.split("/")[2]
        params = item["get"]["parameters"]
        assert [p["name"] for p in params if p["in"] == "query"] == list(PARAMS[name]), route
        in_path = [p["name"] for p in params if p["in"] == "path"]
        assert in_path == [part[1:-1] for part in route.split("/") if part.startswith("{")]


async def test_real_answers_fit_the_schemas() -> None:
    node, market, port = await rest_node(bars_from_trades=True)
    try:
        for i in range(20):
            market.trade(10_000 + i, 1 + i % 4, T0 + i * 7 * 10**9)
        served = await get(port, "/openapi.json")
        assert served.status == 200 and served.json() == document()
        doc = served.json()
        streams = ("SIM/X", "KRAKEN/XBT%2FUSD")
        queries = {
            "instruments": ["", "?venue=KRAKEN"],
            "book": ["", "?depth=3"],
            "trades": ["", "?limit=5"],
            "candles": ["", "?interval=1&limit=4", f"?start={T0}&end=2026-12-01T00:00:00Z"],
            "ticker": [""],
        }
        answered: set[str] = set()
        for route in ROUTES:
            if route == "/openapi.json":
                continue
            name = route.split("/")[2]
            for query in queries[name]:
                for stream in streams if "{venue}" in route else ("",):
                    path = f"/v1/{name}/{stream}".rstrip("/") + query
                    got = await get(port, path)
                    assert got.status == 200, (path, got.body)
                    check(doc, response_schema(doc, route, 200), got.json())
                    answered.add(route)
        assert answered == set(ROUTES) - {"/openapi.json"}
        errors = {
            "/v1/book/NOPE/X": ("/v1/book/{venue}/{symbol}", 404),
            "/v1/candles/SIM/X?interval=2": ("/v1/candles/{venue}/{symbol}", 400),
            "/v1/trades/SIM/NOPE": ("/v1/trades/{venue}/{symbol}", 404),
            "/v1/instruments?depth=1": ("/v1/instruments", 400),
        }
        for path, (route, status) in errors.items():
            got = await get(port, path)
            assert got.status == status, path
            check(doc, response_schema(doc, route, status), got.json())
        node.streams["SIM", "X"].synced = False  # as while it resyncs
        syncing = await get(port, "/v1/book/SIM/X")
        assert syncing.status == 503 and syncing.headers["retry-after"] == "1"
        check(doc, response_schema(doc, "/v1/book/{venue}/{symbol}", 503), syncing.json())
    finally:
        node.streams["SIM", "X"].synced = True
        await node.stop()
