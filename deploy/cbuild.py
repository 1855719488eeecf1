"""Build generated C with the host gcc and call it through ctypes (the verifier's third reference)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deploy.cprogram import TensorSpec
from deploy.errors import ExportError

# The flags the generated code builds cleanly with; -ffp-contract=off keeps gcc from fusing
# multiply-adds, so host results do not depend on the CPU's FMA support.
STRICT_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-ffp-contract=off")
SANITIZE_FLAGS = (
    "-fsanitize=address,undefined,float-cast-overflow",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
)


def compiler() -> str:
    """Path of gcc, or an ExportError saying it is needed."""
    found = shutil.which("gcc")
    if found is None:
        raise ExportError("gcc not found on PATH: it is needed to verify the generated C")
    return found


def build(
    sources: Sequence[Path], output: Path, *, shared: bool = True, extra_flags: Sequence[str] = ()
) -> Path:
    """Compile `sources` with STRICT_FLAGS into a shared library or an executable; errors quote gcc."""
    kind = ["-shared", "-fPIC"] if shared else []
    command = [compiler(), *STRICT_FLAGS, *extra_flags, *kind, *map(str, sources), "-o", str(output), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ExportError(f"gcc failed on the generated C: {first_error(result.stderr)}")
    return output


def first_error(output: str) -> str:
    """The first line of a compiler's or tool's output that reports an error (else its first line)."""
    lines = output.strip().splitlines() or ["no output"]
    return next((line.strip() for line in lines if "error" in line.lower()), lines[0].strip())


class CFunction:
    """A compiled `void f(const float *in..., float *out...)` called with numpy arrays."""

    def __init__(self, library: Path, function: str, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self._library = ctypes.CDLL(str(library))
        self._function = getattr(self._library, function)
        self._function.restype = None
        self.inputs, self.outputs = inputs, outputs

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Inputs in order (any float or bool arrays of the right size) -> outputs (float32, their shapes)."""
        ins = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in arrays]
        for spec, array in zip(self.inputs, ins, strict=True):
            if array.size != spec.numel:
                raise ValueError(f"input {spec.name}: expected {spec.numel} values, got {array.size}")
        outs = [np.zeros(spec.shape, np.float32) for spec in self.outputs]
        pointer = ctypes.POINTER(ctypes.c_float)
        self._function(*[a.ctypes.data_as(pointer) for a in ins + outs])
        return outs


def selftest_error(library: Path) -> float:
    """What `gs_policy_selftest()` of a built policy library returns (infinite for a NaN)."""
    function = ctypes.CDLL(str(library)).gs_policy_selftest
    function.argtypes, function.restype = [], ctypes.c_float
    return float(function())
