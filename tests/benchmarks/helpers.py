"""What the tests of benchmarks/ share: loading a benchmark script as a module, as when it runs."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numba
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = BENCHMARKS.parents[1] / "shared" / "data" / "pogema-benchmark"  # third-party data, read by path
RESULTS = DATA / "published-results.txt"  # the benchmark's published raw results


@contextmanager
def benchmark_script(name: str) -> Iterator[ModuleType]:
    """benchmarks/NAME.py as a module named NAME (its dataclasses look their module up by name), with
    benchmarks/ on sys.path (a script imports its sibling modules, as when run); both undone on exit. The
    numba thread count a script would pick when run alone is pinned to this process's (numba refuses to
    change it once its threads run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
        patch.syspath_prepend(str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        yield module
