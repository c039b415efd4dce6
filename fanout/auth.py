"""Who may connect to a fanout node and what each key may do.

Keys come from a TOML file (``fanout.keys``)::

    [defaults]                       # optional; every key starts from these
    max_subscriptions = 200
    max_connections = 20
    messages_per_s = 20
    channels = ["book", "trades", "bbo", "candles", "status"]

    [[key]]
    id = "desk-a"                    # names the key in logs and as a JWT ``sub``
    key = "…32 or more characters…"  # the API key, also the HS256 secret of its tokens
    channels = ["book", "trades"]    # optional overrides of [defaults]

A client presents the key, or a JWT signed with it, as ``Authorization:
Bearer …``, as ``?token=…`` in the URL (browsers cannot set headers) or in an
``{"op": "auth", "token": …}`` first message. Anonymous access
(``fanout.anonymous``) gives the defaults to everyone without a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from fanout.protocol import CHANNELS
from hub.auth import MAX_TOKEN_LIFETIME_S, MIN_KEY_LENGTH, authenticate
from hub.errors import HubError
from hub.tomlfile import load_toml


@dataclass(frozen=True)
class Grant:
    """What one API key (or the anonymous user) may do on a node."""

    id: str = "anonymous"
    key: str = ""
    channels: frozenset[str] = frozenset(CHANNELS)
    max_subscriptions: int = 200
    """Subscriptions per connection."""
    max_connections: int = 20
    """Open connections per key on one node (anonymous: per node, see fanout.max_connections)."""
    messages_per_s: float = 20.0
    """Client messages per second (bursts of two seconds' worth)."""


class Keys:
    """The node's key table."""

    def __init__(
        self,
        grants: list[Grant],
        anonymous: Grant | None,
        max_token_lifetime_s: float = MAX_TOKEN_LIFETIME_S,
    ) -> None:
        self.by_key = {g.key: g for g in grants}
        self.by_id = {g.id: g for g in grants}
        self.anonymous = anonymous
        self.max_token_lifetime_s = max_token_lifetime_s
        """Longest JWT lifetime accepted (0: no maximum)."""

    def check(self, credential: str | None) -> tuple[Grant | None, str]:
        """(grant, "") or (None, why refused). No credential gets the anonymous grant
        when anonymous access is on."""
        if not credential:
            if self.anonymous is not None:
                return self.anonymous, ""
            return None, "authentication required: an API key or a signed token"
        return authenticate(
            credential, self.by_key.get, self.by_id.get, lambda g: g.key, self.max_token_lifetime_s
        )


def credential_in(request: Request) -> str | None:
    """The key or token of a handshake: ``Authorization: Bearer …``, else ``?token=…``."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    tokens = parse_qs(urlsplit(request.path).query).get("token")
    return tokens[0] if tokens else None


def _grant(raw: dict[str, Any], base: Grant, where: str) -> Grant:
    known = {f.name for f in fields(Grant)} - {"id", "key"}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise HubError(f"{where}: unknown setting {name!r} (one of {', '.join(sorted(known))})")
        if name == "channels":
            if not isinstance(value, list) or not all(v in CHANNELS for v in value):
                raise HubError(f"{where}: channels must be a list of {', '.join(CHANNELS)}")
            out[name] = frozenset(value)
        elif name == "messages_per_s":
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise HubError(f"{where}: messages_per_s must be a number >= 0 (0: no limit)")
            out[name] = float(value)
        else:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HubError(f"{where}: {name} must be an integer >= 1")
            out[name] = value
    return replace(base, **out)


def load_keys(
    path: Path, anonymous: bool, max_token_lifetime_s: float = MAX_TOKEN_LIFETIME_S
) -> Keys:
    """The key table from a TOML file; every mistake is named with the file and the key."""
    data = load_toml(path, "fanout keys file")
    defaults = _grant(data.get("defaults", {}), Grant(), f"{path} [defaults]")
    grants: list[Grant] = []
    for i, raw in enumerate(data.get("key", []), start=1):
        where = f"{path} key #{i}"
        if not isinstance(raw, dict):
            raise HubError(f"{where}: must be a table")
        ident, key = raw.get("id"), raw.get("key")
        if not isinstance(ident, str) or not ident:
            raise HubError(f"{where}: id must be a non-empty string")
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            raise HubError(
                f"{where}: key must be a string of at least {MIN_KEY_LENGTH} characters "
                "(it is also the HS256 secret of its tokens)"
            )
        if any(g.id == ident or g.key == key for g in grants):
            raise HubError(f"{where}: id {ident!r} or its key is used twice")
        rest = {k: v for k, v in raw.items() if k not in ("id", "key")}
        grants.append(replace(_grant(rest, defaults, where), id=ident, key=key))
    if not grants:
        raise HubError(f"fanout keys file {path}: no [[key]] entries")
    return Keys(grants, defaults if anonymous else None, max_token_lifetime_s)


def keys_for(
    keys_file: str, anonymous: bool, max_token_lifetime_s: float = MAX_TOKEN_LIFETIME_S
) -> Keys:
    """The node's key table from its settings: a file, anonymous-only, or nobody."""
    if keys_file:
        return load_keys(Path(keys_file), anonymous, max_token_lifetime_s)
    return Keys([], Grant() if anonymous else None, max_token_lifetime_s)
