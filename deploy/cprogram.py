"""A compiled C function and what it is made of: strided views of buffers (`View`), the function's
arguments (`TensorSpec`), the compiled function (`CProgram`), linking several into one translation unit,
and C literals that read back exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deploy.c_runtime import KERNELS


@dataclass(frozen=True)
class View:
    """A runtime tensor: `shape` elements of buffer `base` at `offset` with element `strides`."""

    base: str
    storage: int  # arena slot id; -1 for the function's inputs
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def is_contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape) or self.numel <= 1


@dataclass(frozen=True)
class TensorSpec:
    """A C argument of the compiled function: its name (without in_/out_ prefix) and shape."""

    name: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class CProgram:
    """One compiled function: its constants, arena and body, the kernels it calls, and its costs."""

    definitions: str  # the arena and `void <function>(in_..., out_...)`
    constants: dict[str, tuple[str, int]]  # name -> (C definition, bytes); names come from the contents
    kernels: tuple[str, ...]  # names in c_runtime.KERNELS
    function: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    arena_floats: int
    macs: int
    elementwise_ops: int
    transcendental_ops: int

    @property
    def weight_bytes(self) -> int:
        return weight_bytes([self])

    @property
    def source(self) -> str:
        """A translation unit body (after math.h and stdint.h) holding this function alone."""
        return link([self])

    def signature(self) -> str:
        params = [f"const float *in_{spec.name}" for spec in self.inputs]
        params += [f"float *out_{spec.name}" for spec in self.outputs]
        return f"void {self.function}({', '.join(params)})"


def _unique_constants(programs: Sequence[CProgram]) -> dict[str, tuple[str, int]]:
    return {name: entry for program in programs for name, entry in program.constants.items()}


def weight_bytes(programs: Sequence[CProgram]) -> int:
    """Flash taken by the constants of `programs` linked together (shared weights count once)."""
    return sum(size for _, size in _unique_constants(programs).values())


def link(programs: Sequence[CProgram]) -> str:
    """Several compiled functions in one translation unit: each kernel and constant once, every function."""
    kernels = sorted({name for program in programs for name in program.kernels})
    constants = [definition for definition, _ in _unique_constants(programs).values()]
    return "\n".join([KERNELS[name] for name in kernels] + constants + [p.definitions for p in programs])


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """The element strides of a row-major (C-contiguous) array of `shape`."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def float_literal(value: float) -> str:
    """A C float literal that reads back as exactly the float32 `value` (9 significant digits)."""
    value = float(np.float32(value))
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    text = f"{value:.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return f"{text}f" if value >= 0 else f"({text}f)"


def array_literal(values: np.ndarray, fmt: Callable[[float], str]) -> str:
    """A C array initializer of `values` (flattened), each written by `fmt`, eight to a line."""
    items = [fmt(v) for v in values.ravel().tolist()] or ["0"]  # C99 has no empty initializer
    lines = [", ".join(items[i : i + 8]) for i in range(0, len(items), 8)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"
