"""Declare the compiled book core and the order path's compiled Python modules
(hub/compiled.py); everything else lives in pyproject.toml.

Set ORDERBOOK_CORE_TRACE=1 at build time to compile with line tracing
(for coverage and profilers); the default build is optimised.
"""

import json
import os
import runpy
from glob import glob
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# Read as a file: nothing of the hub is importable before it is built and installed.
PLAIN = runpy.run_path(str(ROOT / "hub" / "compiled.py"))

TRACE = os.environ.get("ORDERBOOK_CORE_TRACE") == "1"
macros = [("CYTHON_TRACE_NOGIL", "1")] if TRACE else []

MODULES = [
    "_book",
    "_l3",
    "_itch",
    "_engine",
    "_engine_batch",
    "_engine_state",
    "_text",
    "_json",
    "_scan",
    "_scan_numbers",
    "_scan_rows",
]


def extension(name: str) -> Extension:
    """A compiled module ``package.module`` from its .pyx (the book core's headers and
    .pxd contracts on the include path)."""
    return Extension(
        name,
        [name.replace(".", "/") + ".pyx"],
        language="c++",
        include_dirs=["orderbook_core"],
        depends=sorted(glob("orderbook_core/*.hpp")),
        extra_compile_args=["-O3", "-std=c++17"],
        define_macros=macros,
    )


extensions = [extension(f"orderbook_core.{name}") for name in MODULES]
extensions.append(extension("feedhandler._sync"))  # the sync engine every venue feeds

plain = [
    Extension(
        name, [name.replace(".", "/") + ".py"], extra_compile_args=["-O2"], define_macros=macros
    )
    for name in PLAIN["COMPILED"]
]


class BuildExt(build_ext):
    """Builds the extensions, then records which sources the plain modules were built
    from (hub/compiled.py imports a module's source wherever it has changed since)."""

    def run(self) -> None:
        super().run()
        names = PLAIN["COMPILED"]
        built = {name: PLAIN["digest"](PLAIN["source_of"](name, ROOT)) for name in names}
        target = (ROOT if self.inplace else Path(self.build_lib)) / "hub" / PLAIN["BUILT"].name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "linetrace": TRACE,
        },
    )
    # Python as written: negative indices, Python division, the annotations only notes.
    + cythonize(
        plain,
        language_level=3,
        compiler_directives={"annotation_typing": False, "binding": True, "linetrace": TRACE},
    ),
)
