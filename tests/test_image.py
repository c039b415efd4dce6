"""The image builds the wheel from everything the wheel lists, and compose checks each hub
process's health (no Docker engine needed: the Dockerfile, .dockerignore and compose file
are read, and the healthcheck command is run against a local /healthz)."""

from __future__ import annotations

import fnmatch
import http.server
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator

import pytest
import yaml
from setuptools import find_packages  # type: ignore[import-untyped]

from hub.config import load_config
from tests.conftest import ROOT

HEALTH_PORTS = {
    "feed": "feed.metrics_port",
    "fanout": "fanout.port",
    "recorder": "recorder.metrics_port",
}


def build_copies(dockerfile: str) -> list[str]:
    """The context paths the first (build) stage copies: COPY lines without --from."""
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)
    copies: list[str] = []
    for line in stages[1].splitlines():
        if not line.startswith("COPY "):
            continue
        parts = shlex.split(line)
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            copies += [p for p in parts[1:-1] if not p.startswith("--")]
    return copies


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, '/'-separated) out of the context:
    a pattern matches the path or one of its parent directories; '**/' any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        anywhere = pattern.removeprefix("**/") if pattern.startswith("**/") else None
        for prefix in prefixes:
            name = prefix.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(prefix, pattern) or (
                anywhere is not None and fnmatch.fnmatchcase(name, anywhere)
            ):
                out = not negate
                break
    return out


def context_files(copies: list[str], patterns: list[str]) -> set[str]:
    files = set()
    for src in copies:
        base = ROOT / src
        for path in [base] if base.is_file() else base.rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(rel, patterns):
                files.add(rel)
    return files


def wheel_sources() -> list[str]:
    """What the wheel is built from: pyproject's found packages and package data."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(ROOT), include=config["packages"]["find"]["include"])
    wanted = ["pyproject.toml", "setup.py", "README.md"]
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        wanted += [p.relative_to(ROOT).as_posix() for p in folder.glob("*.py")]
    for package, globs in config["package-data"].items():
        for pattern in globs:
            found = (ROOT / package).glob(pattern)
            wanted += [p.relative_to(ROOT).as_posix() for p in found if p.is_file()]
    return wanted


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [x.strip() for x in lines if x.strip() and not x.startswith("#")]


def test_the_build_stage_copies_every_file_the_wheel_is_built_from() -> None:
    copies = build_copies((ROOT / "Dockerfile").read_text())
    assert copies, "the build stage copies nothing"
    present = context_files(copies, dockerignore())
    missing = [p for p in wheel_sources() if p not in present]
    assert not missing, f"the image's build would miss: {missing[:10]}"
    assert not any(p.startswith(("tests/", ".venv/", ".services/")) for p in present)


def test_the_check_catches_a_per_package_copy_list_that_misses_one() -> None:
    narrowed = build_copies(
        "# a comment\nFROM x AS build\nCOPY pyproject.toml setup.py README.md ./\nCOPY hub hub\n"
        "COPY orderbook_core orderbook_core\nRUN pip wheel .\nFROM y\nCOPY --from=build /w /w\n"
    )
    present = context_files(narrowed, dockerignore())
    missing = {p.split("/")[0] for p in wheel_sources() if p not in present}
    assert {"trading", "fanout", "app"} <= missing


def test_dockerignore_matches_as_docker_does() -> None:
    patterns = ["build", "**/__pycache__", "**/*.so", "orderbook_core/*.cpp"]
    assert ignored("build/lib/x.py", patterns)
    assert ignored("hub/__pycache__/db.cpython-311.pyc", patterns)
    assert ignored("orderbook_core/_book.cpython-311-x86_64-linux-gnu.so", patterns)
    assert ignored("orderbook_core/_book.cpp", patterns)
    assert not ignored("orderbook_core/_book.pyx", patterns)
    assert not ignored("hub/sql/001_trades.sql", patterns)


class Health(http.server.BaseHTTPRequestHandler):
    body = b'{"ok": true}'
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[Health]]]:
    handler = type("H", (Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, handler
    server.shutdown()


def test_compose_checks_each_hub_process_on_its_healthz(
    health_server: tuple[http.server.HTTPServer, type[Health]],
) -> None:
    server, handler = health_server
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    defaults = load_config(env={})
    for name, setting in HEALTH_PORTS.items():
        section, key = setting.split(".")
        port = getattr(getattr(defaults, section), key)
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert f"http://127.0.0.1:{port}/healthz" in test[3]
        here = test[3].replace(f":{port}/", f":{server.server_port}/")
        outcomes = []
        for status, body in ((200, b'{"ok": true}'), (200, b'{"ok": false}'), (503, b"{}")):
            handler.status, handler.body = status, body
            outcomes.append(
                subprocess.run([sys.executable, "-c", here], capture_output=True).returncode
            )
        assert outcomes[0] == 0 and outcomes[1] != 0 and outcomes[2] != 0, (name, outcomes)


def test_a_one_shot_service_has_no_healthcheck() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "healthcheck" not in services["migrate"]
    assert re.search(r"^COPY \. \.$", (ROOT / "Dockerfile").read_text(), re.M)
