"""Builds the compiled core, the journal codec, the gateway's report encoder and its inbound
fast path.

Switches (environment variables):

ENGINE_ANNOTATE=1   write Cython's HTML annotation next to each .pyx
ENGINE_DEBUG=1      keep bounds/wraparound checks and add line tracing (slow; for profiling)
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("ENGINE_DEBUG") == "1"
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "cdivision": True,
    "initializedcheck": debug,
    "embedsignature": True,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if debug:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

extensions = [
    Extension(
        name,
        [source],
        include_dirs=[np.get_include()],
        define_macros=macros,
        extra_compile_args=["-O3"] if not debug else ["-O0", "-g"],
    )
    for name, source in [
        ("engine.risk._risk", "engine/risk/_risk.pyx"),
        ("engine._core", "engine/_core.pyx"),
        ("engine.journal._codec", "engine/journal/_codec.pyx"),
        ("engine.gateway._reports", "engine/gateway/_reports.pyx"),
        ("engine.gateway._wire", "engine/gateway/_wire.pyx"),
    ]
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=os.environ.get("ENGINE_ANNOTATE") == "1",
    ),
)
