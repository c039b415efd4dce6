"""Operator endpoints of every long-running process: /metrics and /healthz.

Processes that already run a websockets server answer these paths from its
``process_request`` hook (``http_response``); the others start a small
server of their own with ``serve_ops``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

HealthCheck = Callable[[], dict[str, Any]]
"""Returns a JSON-able status; ``{"ok": False, ...}`` answers 503."""


def response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


def ops_response(
    path: str, health: HealthCheck, registry: CollectorRegistry = REGISTRY
) -> Response | None:
    """Answer /metrics and /healthz; None for any other path."""
    if path == "/metrics":
        return response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        status = health()
        code = 200 if status.get("ok", False) else 503
        return response(code, orjson.dumps(status), "application/json")
    return None


async def serve_ops(host: str, port: int, health: HealthCheck) -> Server:
    """Serve /metrics and /healthz over plain HTTP on host:port."""

    def process_request(_conn: ServerConnection, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        return ops_response(path, health) or response(404, b"not found\n", "text/plain")

    async def refuse(_conn: ServerConnection) -> None:
        await asyncio.sleep(0)

    return await serve(refuse, host, port, process_request=process_request)


def bound_port(server: Server) -> int:
    """The TCP port a server listens on (useful when configured with port 0)."""
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port
