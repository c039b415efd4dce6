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

MODULES = ["_book", "_l3", "_itch", "_engine", "_engine_batch", "_engine_state", "_text", "_scan"]

extensions = [
    Extension(
        f"orderbook_core.{name}",
        [f"orderbook_core/{name}.pyx"],
        language="c++",
        include_dirs=["orderbook_core"],
        depends=sorted(glob("orderbook_core/*.hpp")),
        extra_compile_args=["-O3", "-std=c++17"],
        define_macros=macros,
    )
    for name in MODULES
]

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
