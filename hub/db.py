"""Schema migrations (psycopg): the numbered files in sql/, applied once each.

``sql/NNN_name.sql`` files run in order, each in its own transaction, and are
recorded in ``schema_version``; an advisory lock makes concurrent runs safe.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from hub.errors import HubError, ServiceUnavailable

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x6D64687562  # "mdhub"


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    """The migration files in order; refuse misnamed or duplicate versions."""
    found: dict[int, Path] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise HubError(f"migration {path.name}: name must look like 001_description.sql")
        version = int(m.group(1))
        if version in found:
            raise HubError(
                f"migrations {found[version].name} and {path.name} share version {version}"
            )
        found[version] = path
    return sorted(found.items())


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(dsn, connect_timeout=5)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable("PostgreSQL", redact_dsn(dsn), first) from None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked, for logs and error messages."""
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", dsn)


def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the names of those applied now."""
    applied_now: list[str] = []
    with connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
        for version, path in migrations(sql_dir):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                row = conn.execute(
                    "SELECT 1 FROM schema_version WHERE version = %s", (version,)
                ).fetchone()
                if row is not None:
                    continue
                try:
                    conn.execute(path.read_text().encode())
                except psycopg.Error as exc:
                    raise HubError(f"migration {path.name} failed: {exc}") from None
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                    (version, path.name),
                )
                applied_now.append(path.name)
    return applied_now


def current_version(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        return int(str(row[0])) if row else 0
