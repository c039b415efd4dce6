"""Declare the compiled book core; everything else lives in pyproject.toml.

Set ORDERBOOK_CORE_TRACE=1 at build time to compile with line tracing
(for coverage and profilers); the default build is optimised.
"""

import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

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


setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "linetrace": TRACE,
        },
    ),
)
