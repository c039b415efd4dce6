"""Operator mends, through the hub command as a user types it: ports checked, secrets
masked, a port in use named in one line, a missing database said as such (and created),
`hub services` outside a checkout."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app import cli
from hub.db import migrations
from tests.app.test_cli import run_hub


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        (["demo", "--port", "70000"], {}, "fanout.port"),
        (["feed", "--metrics-port", "-1"], {}, "feed.metrics_port"),
        (["recorder", "--metrics-port", "65536"], {}, "recorder.metrics_port"),
        (["config"], {"HUB_ORDERS__PORT": "99999"}, "orders.port"),
    ],
)
def test_a_port_out_of_range_is_a_config_error_naming_the_setting(
    args: list[str], env: dict[str, str], setting: str
) -> None:
    out = run_hub(*args, env=env)
    assert out.returncode == 2
    value = args[-1] if not env else next(iter(env.values()))
    assert out.stderr.strip() == (
        f"hub: config error: {setting}: port must be 1-65535 (0: any free port), got {value}"
    )


def test_port_zero_still_means_any_free_port() -> None:
    out = run_hub("config", env={"HUB_FANOUT__PORT": "0", "HUB_FEED__METRICS_PORT": "65535"})
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert (cfg["fanout"]["port"], cfg["feed"]["metrics_port"]) == (0, 65535)


def test_config_masks_passwords_in_dsns_and_urls() -> None:
    out = run_hub(
        "config",
        env={
            "HUB_POSTGRES__DSN": "postgresql://hub:hunter2@db:5432/hub?sslmode=require",
            "HUB_REDIS__URL": "redis://:s3cret@cache:6379/0",
        },
    )
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["postgres"]["dsn"] == "postgresql://hub:***@db:5432/hub?sslmode=require"
    assert cfg["redis"]["url"] == "redis://:***@cache:6379/0"
    assert "hunter2" not in out.stdout and "s3cret" not in out.stdout


def test_mask_secret_covers_key_value_dsns_and_query_strings() -> None:
    from hub.config import mask_secret

    assert mask_secret("host=db user=hub password=hunter2 dbname=hub") == (
        "host=db user=hub password=*** dbname=hub"
    )
    assert mask_secret("postgresql://db/hub?user=hub&password=hunter2") == (
        "postgresql://db/hub?user=hub&password=***"
    )
    assert mask_secret("postgresql://hub@db/hub") == "postgresql://hub@db/hub"


def test_a_port_in_use_is_one_line_naming_address_and_setting() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        out = run_hub("demo", "--port", str(port))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"hub: config error: 127.0.0.1:{port} (fanout.port) is already in use: "
        "stop what listens there or choose another port"
    )


def test_services_outside_a_checkout_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "ROOT", tmp_path)  # an installed hub: no scripts/ beside it
    assert cli.main(["services", "status"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [cli.SERVICES_NEED_CHECKOUT]


@pytest.fixture
def absent_database(services: dict[str, str]) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield services["postgres_admin"].rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(services["postgres_admin"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.services
def test_migrate_on_a_missing_database_says_so_and_db_create_makes_it(
    absent_database: str,
) -> None:
    name = absent_database.rsplit("/", 1)[1]
    out = run_hub("db", "migrate", "--postgres", absent_database)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"hub: error: database {name!r} does not exist on PostgreSQL at {absent_database}: "
        "create it with `hub db create`"
    )
    # the recorder (asyncpg, not psycopg) says the same, not "unreachable"
    out = run_hub("recorder", env={"HUB_POSTGRES__DSN": absent_database})
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"hub: error: database {name!r} does not exist on PostgreSQL at {absent_database}: "
        "create it with `hub db create`"
    )
    out = run_hub("db", "create", "--postgres", absent_database)
    assert (out.returncode, out.stdout.strip()) == (0, f"database created: {absent_database}")
    out = run_hub("db", "create", "--postgres", absent_database)  # idempotent
    assert (out.returncode, out.stdout.strip()) == (
        0,
        f"database exists already: {absent_database}",
    )
    out = run_hub("db", "migrate", "--postgres", absent_database)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"schema version {migrations()[-1][0]}")
