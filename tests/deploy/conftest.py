"""The `compile_c` fixture: compile a module to C, build it with gcc, call it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from deploy.cbuild import CFunction, build
from deploy.ccompile import compile_module

CompileFn = Callable[..., CFunction]


@pytest.fixture
def compile_c(tmp_path: Path) -> CompileFn:
    """compile_c(module, inputs: dict, outputs: list[str], int8=False) -> the C function via ctypes."""
    count = iter(range(1000))

    def compile_and_load(
        module: torch.nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], int8: bool = False
    ) -> CFunction:
        program = compile_module(module, inputs, outputs, int8=int8)
        source = tmp_path / f"unit{next(count)}.c"
        source.write_text("#include <math.h>\n#include <stdint.h>\n" + program.source)
        library = build([source], source.with_suffix(".so"))
        return CFunction(library, program.function, program.inputs, program.outputs)

    return compile_and_load
