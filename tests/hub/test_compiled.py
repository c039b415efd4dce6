"""The order path's compiled modules (hub/compiled.py): what runs is the build where it
matches the source, the source everywhere else."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

import pytest

from hub import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_every_order_path_module_runs_as_built_or_as_source_as_asked() -> None:
    for name in compiled.COMPILED:
        importlib.import_module(name)
    running = compiled.running_compiled()
    assert set(running) == set(compiled.COMPILED)
    if os.environ.get("ORDERBOOK_CORE") == "python":
        assert not any(running.values()), running
    else:  # scripts/install.sh builds them: a stale or missing build fails here
        assert all(running.values()), f"not compiled (rebuild: setup.py build_ext): {running}"


def test_the_build_records_the_source_of_each_module() -> None:
    if os.environ.get("ORDERBOOK_CORE") == "python":
        pytest.skip("the twin run imports the sources")
    built = compiled._built()
    root = Path(compiled.__file__).resolve().parent.parent
    assert built == {n: compiled.digest(compiled.source_of(n, root)) for n in compiled.COMPILED}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package ``fakepkg`` with a module ``mod`` and a file where its extension would be
    (not a loadable one: importing it would fail, so a test sees which was taken)."""
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("WHERE = 'source'\n")
    (pkg / f"mod{SUFFIX}").write_bytes(b"not an extension")
    return pkg


def spec(package: Path, choice: str, built: dict[str, str]) -> object:
    finder = compiled.SourceUnlessBuilt(choice, ["fakepkg.mod"], built)
    return finder.find_spec("fakepkg.mod", [str(package)])


def test_a_current_build_is_left_to_the_ordinary_finders(package: Path) -> None:
    built = {"fakepkg.mod": compiled.digest(package / "mod.py")}
    assert spec(package, "auto", built) is None
    assert spec(package, "cython", built) is None


def test_a_source_changed_since_its_build_is_what_runs(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built = {"fakepkg.mod": compiled.digest(package / "mod.py")}
    (package / "mod.py").write_text("WHERE = 'edited source'\n")
    found = spec(package, "auto", built)
    assert found is not None and found.origin == str(package / "mod.py")  # type: ignore[attr-defined]
    assert "changed since it was built" in caplog.records[-1].why  # type: ignore[attr-defined]
    finder = compiled.SourceUnlessBuilt("auto", ["fakepkg.mod"], built)
    sys.path.insert(0, str(package.parent))
    sys.meta_path.insert(0, finder)
    try:
        module = importlib.import_module("fakepkg.mod")
        assert module.WHERE == "edited source"
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(package.parent))
        for name in ("fakepkg.mod", "fakepkg"):
            sys.modules.pop(name, None)


def test_a_module_never_built_is_its_source_and_cython_refuses_it(package: Path) -> None:
    found = spec(package, "auto", {})
    assert found is not None and found.origin == str(package / "mod.py")  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match=r"fakepkg\.mod is built, but its build is not recorded"):
        spec(package, "cython", {})
    (package / f"mod{SUFFIX}").unlink()
    with pytest.raises(ImportError, match=r"fakepkg\.mod is not built"):
        spec(package, "cython", {})


def test_the_twin_run_takes_every_source_even_when_built(package: Path) -> None:
    built = {"fakepkg.mod": compiled.digest(package / "mod.py")}
    found = spec(package, "python", built)
    assert found is not None and found.origin == str(package / "mod.py")  # type: ignore[attr-defined]


def test_modules_it_does_not_name_are_not_its_business(package: Path) -> None:
    finder = compiled.SourceUnlessBuilt("python", ["fakepkg.mod"], {})
    assert finder.find_spec("fakepkg.other", [str(package)]) is None
    assert finder.find_spec("fakepkg.mod", None) is None
