"""What ships builds and runs: the wheel, installed outside the checkout, migrates a fresh
database and serves the demo (health, page, a book whose checksums verify).

How, and why it is honest and fast (about 15 s once the core is compiled):
- The wheel is built from the checkout with ``pip wheel --no-deps --no-build-isolation``:
  the build runs in the tree, so setuptools reuses ``build/`` (git-ignored) and only a
  first build compiles the core (about two minutes); the build dependencies come from
  the shared venv instead of a download. Everything but the compiled modules is cleared
  from ``build/lib*`` first, so a file deleted from the tree cannot ship from the cache.
- It is installed with ``--no-deps`` into a fresh venv made without pip. The dependencies
  (websockets, asyncpg...) come from the shared venv's site-packages, named by one path
  line in a ``.pth`` file. Such a path is only appended to ``sys.path``: the ``.pth``
  files inside it (the shared venv's editable install of the checkout) are not run, and
  the fresh venv's own site-packages comes first, so ``import hub`` finds the wheel's
  copy; the test checks that, and that no module comes from the checkout.
- Every command runs from a temporary directory, with no PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from app.cli import SERVICES_NEED_CHECKOUT
from hub import compiled
from tests.conftest import ROOT
from tests.test_layout import LEVEL

pytestmark = pytest.mark.services
SHARED_SITE = Path(sysconfig.get_paths()["purelib"])
VENDOR = [
    "lightweight-charts.standalone.production.js",
    "lightweight-charts.LICENSE",
    "lightweight-charts.NOTICE",
]
CORE_MODULES = [
    "orderbook_core/_book",
    "orderbook_core/_l3",
    "orderbook_core/_itch",
    "orderbook_core/_engine",
    "orderbook_core/_engine_batch",
    "orderbook_core/_engine_state",
    "orderbook_core/_text",
    "orderbook_core/_json",
    "orderbook_core/_scan",
    "orderbook_core/_scan_numbers",
    "orderbook_core/_scan_rows",
    "feedhandler/_sync",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    for lib in (ROOT / "build").glob("lib*"):  # the cache keeps compiled modules only
        for stale in lib.rglob("*"):
            if stale.is_file() and stale.suffix != ".so":
                stale.unlink()
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*build, "-w", str(out), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("mdhub-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its bin directory."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    done = subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "shared-dependencies.pth").write_text(f"{SHARED_SITE}\n")
    return env_dir / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd)},
    )


def test_the_wheel_holds_every_room_and_what_they_need_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {
        str(p.parent.relative_to(ROOT))
        for room in LEVEL
        for p in (ROOT / room).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert {f"{p}/__init__.py" for p in packages} <= names
    wanted = [
        *(str(p.relative_to(ROOT)) for p in (ROOT / "hub" / "sql").glob("*.sql")),
        *(str(p.relative_to(ROOT)) for p in (ROOT / "fanout" / "web").rglob("*") if p.is_file()),
        *(str(p.relative_to(ROOT)) for p in (ROOT / "orderbook_core").glob("*.pyi")),
        "feedhandler/_sync.pyi",
        "hub/py.typed",
        "orderbook_core/py.typed",
    ]
    assert set(wanted) <= names
    # the page's chart library and its licence (npm, fetched by scripts/install.sh)
    assert {f"fanout/web/vendor/{n}" for n in VENDOR} <= names
    for module in CORE_MODULES:
        assert any(re.fullmatch(rf"{module}\.cpython-.*\.so", n) for n in names), module
    tops = {n.split("/")[0] for n in names if not n.startswith("mdhub-")}
    assert tops == set(LEVEL)  # no tests, testing, bench or loadtests
    assert not [n for n in names if n.endswith((".cpp", ".c"))]  # generated C stays in the build
    # The order path's modules built from their source, recorded as built from the very
    # sources the wheel holds (else the installed hub would run those: hub/compiled.py).
    wheel_file = zipfile.ZipFile(wheel)
    built = json.loads(wheel_file.read("hub/compiled.json"))
    for module in compiled.COMPILED:
        path = module.replace(".", "/")
        assert any(re.fullmatch(rf"{path}\.cpython-.*\.so", n) for n in names), module
        assert built[module] == hashlib.sha256(wheel_file.read(f"{path}.py")).hexdigest()


class Demo:
    """``hub demo`` of the installed wheel, its stdout read line by line."""

    def __init__(self, bin_dir: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [str(bin_dir / "hub"), "demo", "--port", "0", "--symbols", "BTC-USD"],
            cwd=cwd,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            m = re.search(r"WebSocket API ws://127.0.0.1:(\d+)/ws", line)
            if m:
                return int(m.group(1))
        raise AssertionError("demo never announced its port:\n" + "".join(self.output[-40:]))

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "elsewhere"
    work.mkdir()
    yield work


def test_installed_hub_migrates_and_runs_the_demo_outside_the_checkout(
    installed: Path, outside: Path, database: str
) -> None:
    where = run(installed, outside, "python", "-c", "import hub, app; print(hub.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)
    assert str(ROOT) not in where.stdout
    # The order path runs its compiled modules there (their build matches the sources).
    code = "import trading.gateway, hub.compiled; print(hub.compiled.running_compiled())"
    running = run(installed, outside, "python", "-c", code)
    assert running.returncode == 0, running.stderr
    assert running.stdout.strip() == str(dict.fromkeys(compiled.COMPILED, True)), running.stdout

    migrated = run(installed, outside, "hub", "db", "migrate", "--postgres", database)
    assert migrated.returncode == 0, migrated.stderr
    sql = sorted((ROOT / "hub" / "sql").glob("*.sql"))
    assert f"applied {len(sql)} migration(s): " in migrated.stdout
    created = {
        name
        for path in sql
        for name in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text())
    }
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert created | {"schema_version"} <= {r[0] for r in rows}
    version = run(installed, outside, "hub", "db", "version", "--postgres", database)
    assert version.stdout.strip() == f"schema version {int(sql[-1].name[:3])}"

    services = run(installed, outside, "hub", "services", "status")
    assert services.returncode == 2
    assert services.stderr.strip() == SERVICES_NEED_CHECKOUT

    demo = Demo(installed, outside)
    try:
        port = demo.port()
        base = f"http://127.0.0.1:{port}"
        health = orjson.loads(urllib.request.urlopen(f"{base}/healthz", timeout=10).read())
        assert health["ok"] is True
        page = urllib.request.urlopen(f"{base}/", timeout=10).read().decode()
        assets = re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css|LICENSE|NOTICE))"', page)
        assert {"/app.js", "/ui.js", "/chart.js", "/style.css"} <= set(assets)
        assert {f"/vendor/{n}" for n in VENDOR} <= set(assets)
        for asset in assets:
            body = urllib.request.urlopen(f"{base}{asset}", timeout=10).read()
            assert body == (ROOT / "fanout" / "web" / asset.lstrip("/")).read_bytes()
        view = run(
            installed,
            outside,
            "hub",
            "subscribe",
            "BTC-USD",
            "--url",
            f"ws://127.0.0.1:{port}/ws",
            "--channel",
            "book",
            "--count",
            "10",
        )
        assert view.returncode == 0, view.stderr
        books = [x for x in view.stdout.splitlines() if x.startswith(("snapshot", "book "))]
        assert books and all(x.rstrip().endswith("checksum ok") for x in books)
    finally:
        assert demo.stop() == 0, "".join(demo.output[-40:])


def test_installed_hub_writes_samples_and_replays_each_outside_the_checkout(
    installed: Path, outside: Path
) -> None:
    """``hub sample`` needs only product code: each command it prints runs from the wheel."""
    made = run(installed, outside, "hub", "sample", str(outside / "samples"))
    assert made.returncode == 0, made.stderr
    commands = [
        line.split("replay: ", 1)[1].split()
        for line in made.stdout.splitlines()
        if line.strip().startswith("replay: ")
    ]
    kinds = ["itch", "lobster", "lobster", "databento", "databento", "capture"]
    assert [c[2] for c in commands] == kinds
    for command in commands:
        done = run(installed, outside, *command, *(["--check"] if command[2] == "lobster" else []))
        assert done.returncode == 0, done.stderr
        summary = orjson.loads(done.stdout)
        assert summary.get("mismatches", 0) == 0
        assert summary.get("symbols", summary.get("instruments", summary.get("bids")))
