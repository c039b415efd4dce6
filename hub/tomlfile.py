"""TOML files the hub reads (configuration, fanout keys, trading accounts): one loader."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hub.errors import BadInput


def load_toml(path: Path, what: str, error: type[BadInput] = BadInput) -> dict[str, Any]:
    """The table in ``path``; a missing, unreadable or malformed file raises ``error`` naming
    ``what`` (e.g. "accounts file") and the path."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{what} {path}: {exc}") from None
