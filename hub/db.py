"""PostgreSQL for the hub: connections, the drivers' errors in the hub's terms, migrations.

Every database failure leaves this module (or a block under ``postgres_errors``)
as a HubError: ServiceUnavailable (retriable) when the server cannot be reached,
is restarting or dropped the connection, a ServiceError (not retriable) when it
refused the statement. Retry code reads ``exc.retriable`` and lists no driver types.

``sql/NNN_name.sql`` files run in order, each in its own transaction, and are
recorded in ``schema_version``; an advisory lock makes concurrent runs safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.sql

from hub.errors import BadInput, ConfigError, HubError, ServiceError, ServiceUnavailable
from hub.events import Bar

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x6D64687562  # "mdhub"


UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # 08xxx, and the server going away mid-query
    asyncpg.InterfaceError,  # the client's side of a connection that is gone
    asyncpg.exceptions.OperatorInterventionError,  # 57P0x: admin/crash shutdown, starting up
    psycopg.OperationalError,
)
"""Driver errors that mean the database cannot be reached or is restarting."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def postgres_error(exc: BaseException, dsn: str) -> HubError:
    """The hub's error for a driver's: ServiceUnavailable (retriable) for a database that
    cannot be reached or is restarting, a non-retriable ServiceError for a refused
    statement; a HubError stays as it is."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, UNREACHABLE):
        return ServiceUnavailable("PostgreSQL", redact_dsn(dsn), _first_line(exc))
    return ServiceError(f"PostgreSQL at {redact_dsn(dsn)} refused: {_first_line(exc)}")


@contextmanager
def postgres_errors(dsn: str) -> Iterator[None]:
    """Raise the drivers' errors of the block (sync or awaited) as ``postgres_error``'s."""
    try:
        yield
    except (*UNREACHABLE, asyncpg.PostgresError, psycopg.Error) as exc:
        raise postgres_error(exc, dsn) from exc


async def connect_async(dsn: str) -> asyncpg.Connection:
    """An asyncpg connection; MissingDatabase when the server has no such database, any
    other failure to get one ServiceUnavailable (a server that refuses the login may be
    starting up, so retrying can help)."""
    try:
        return await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError as exc:
        missing = _NO_DATABASE.search(str(exc))
        raise MissingDatabase(missing.group(1) if missing else "?", dsn) from None
    except (*UNREACHABLE, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(
            "PostgreSQL", redact_dsn(dsn), str(exc) or type(exc).__name__
        ) from exc


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    """The migration files in order; refuse misnamed or duplicate versions."""
    found: dict[int, Path] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise BadInput(f"migration {path.name}: name must look like 001_description.sql")
        version = int(m.group(1))
        if version in found:
            raise BadInput(
                f"migrations {found[version].name} and {path.name} share version {version}"
            )
        found[version] = path
    return sorted(found.items())


class MissingDatabase(ServiceError):
    """The server answers but has no database of the DSN's name (``hub db create`` makes it)."""

    def __init__(self, name: str, dsn: str) -> None:
        super().__init__(
            f"database {name!r} does not exist on PostgreSQL at {redact_dsn(dsn)}: "
            "create it with `hub db create`"
        )
        self.name = name


_NO_DATABASE = re.compile(r'database "([^"]+)" does not exist')


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection; MissingDatabase when the server has no such database, else
    ServiceUnavailable naming the (redacted) DSN."""
    try:
        return psycopg.connect(dsn, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing = _NO_DATABASE.search(str(exc))
        if missing:
            raise MissingDatabase(missing.group(1), dsn) from None
        raise ServiceUnavailable("PostgreSQL", redact_dsn(dsn), _first_line(exc)) from None
    except psycopg.ProgrammingError as exc:  # the DSN cannot be parsed
        raise ConfigError(f"postgres.dsn {redact_dsn(dsn)}: {_first_line(exc)}") from None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked, for logs and error messages."""
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", dsn)


def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the names of those applied now."""
    applied_now: list[str] = []
    with postgres_errors(dsn), connect(dsn) as conn:
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
    """The highest migration applied (0: none)."""
    with postgres_errors(dsn), connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        return int(str(row[0])) if row else 0


def create_database(dsn: str) -> bool:
    """Create the database the DSN names (connecting to the server's ``postgres`` database
    with the same user and address); False when it exists already (idempotent)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"postgres.dsn {redact_dsn(dsn)}: {_first_line(exc)}") from None
    name = str(params.get("dbname") or params.get("user") or "")
    if not name:
        raise ConfigError(f"postgres.dsn {redact_dsn(dsn)} names no database")
    params["dbname"] = "postgres"
    admin = psycopg.conninfo.make_conninfo("", **params)
    with postgres_errors(dsn), connect(admin) as conn:
        conn.autocommit = True
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created meanwhile by a concurrent run
            return False
    return True


UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_ns(stamp: datetime) -> int:
    """A timestamptz value as exact integer ns since the Unix epoch."""
    return (stamp - UNIX_EPOCH) // timedelta(microseconds=1) * 1000


def bar_from_row(r: asyncpg.Record) -> Bar:
    """A ``bars`` row (venue, symbol, interval_s, bucket, open ... trades) as a Bar, its
    start in exact integer ns."""
    return Bar(
        r["venue"],
        r["symbol"],
        r["interval_s"],
        time_ns(r["bucket"]),
        r["open"],
        r["high"],
        r["low"],
        r["close"],
        int(r["volume"]),
        int(r["notional"]),
        r["trades"],
    )
