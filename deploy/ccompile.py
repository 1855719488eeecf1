"""Compile a torch module (one agent's step, batch 1, static shapes) to a C99 function.

The module is traced with `torch.export` and decomposed to core ATen ops. Each op is lowered to C from an
explicit table; anything else fails with the op and the module it came from. Ops whose inputs are all known
at export time (weights, `arange`, `full`, ...) are evaluated here and become constants. Views (reshape,
permute, expand, slice, ...) cost no code: a value is a strided view of a buffer, and the kernels read
strides. Every other op writes a fresh contiguous buffer in one static float arena whose slots are reused
once their last reader has run (first-fit over live ranges), so the arena size is the activation RAM.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from deploy.cemit import Compiler
from deploy.clower import lower_node, supported_ops
from deploy.cprogram import CProgram, TensorSpec, View, contiguous_strides, float_literal, link, weight_bytes
from deploy.errors import UnsupportedOpError

__all__ = [
    "CProgram",
    "TensorSpec",
    "compile_module",
    "float_literal",
    "link",
    "supported_ops",
    "weight_bytes",
]


def compile_module(
    module: nn.Module,
    example_inputs: dict[str, torch.Tensor],
    output_names: Sequence[str],
    *,
    function: str = "gs_policy_forward",
    int8: bool = False,
    float_modules: Sequence[str] = (),
    hessians: dict[str, np.ndarray] | None = None,
) -> CProgram:
    """Trace `module(**example_inputs)` and lower it to one C function `function(in_..., out_...)`.

    Inputs are float32 or bool (passed to C as 0/1 floats), batch 1, static shapes; the outputs are the
    module's returned tensors in order, named by `output_names`. Raises UnsupportedOpError naming the op and
    the module it belongs to for anything the C runtime does not implement. With `int8`, the fixed weights
    of matmuls and convolutions are int8 with one scale per output row, except in the modules whose dotted
    paths (or their parents') are listed in `float_modules`, rounded by GPTQ for the modules whose input
    moments `hessians` has (deploy.quantize.layer_hessians), else to nearest.
    """
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecation notes
        program = torch.export.export(module, (), kwargs=example_inputs).run_decompositions()
    constants = {**program.state_dict, **program.constants}
    signature = program.graph_signature
    lifted = {
        **signature.inputs_to_parameters,
        **signature.inputs_to_buffers,
        **signature.inputs_to_lifted_tensor_constants,
    }
    c = Compiler(int8, float_modules, hessians)
    env: dict[torch.fx.Node, object] = {}
    inputs = []
    for node in program.graph.nodes:
        c.node_index += 1
        if node.op == "placeholder":
            if node.name in lifted:
                env[node] = constants[lifted[node.name]].detach()
                continue
            shape = tuple(int(s) for s in node.meta["val"].shape)
            inputs.append(TensorSpec(node.name, shape))
            env[node] = View(f"in_{node.name}", -1, shape, contiguous_strides(shape))
        elif node.op == "call_function":
            env[node] = lower_node(c, node, env)
        elif node.op == "output":
            returned = [env[n] for n in node.args[0]]
            c.touch(returned)
    if len(returned) != len(output_names):
        raise UnsupportedOpError(f"the module returns {len(returned)} tensors, expected {len(output_names)}")
    outputs = []
    for name, value in zip(output_names, returned, strict=True):
        view = c.as_view(value)
        spec = TensorSpec(name, view.shape)
        outputs.append(spec)
        c.elementwise(
            View(f"out_{name}", -1, view.shape, contiguous_strides(view.shape)), [view], "{0}", count=False
        )
    user_names = [spec.name for spec in inputs]
    if user_names != list(example_inputs):
        raise UnsupportedOpError(f"traced inputs {user_names} differ from the given {list(example_inputs)}")
    return _assemble(c, function, inputs, outputs)


def _assign_arena(c: Compiler) -> tuple[list[int], int]:
    """First-fit offsets for the buffers by live range [born, last use]; returns offsets and arena size."""
    offsets, live, arena = [], [], 0
    for storage, size in enumerate(c.storage_sizes):
        born = c.storage_born[storage]
        live = [(o, s, end) for o, s, end in live if end >= born]
        offset = 0
        for o, s, _ in sorted(live):
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets.append(offset)
        live.append((offset, size, c.last_use.get(storage, born)))
        arena = max(arena, offset + size)
    return offsets, arena


def _assemble(c: Compiler, function: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> CProgram:
    offsets, arena = _assign_arena(c)
    body = [f"    (void)in_{spec.name};" for spec in inputs]
    body += [f"    float *const t{i} = {function}_arena + {offset};" for i, offset in enumerate(offsets)]
    program = CProgram(
        "",
        dict(c.constants),
        tuple(sorted(c.kernels)),
        function,
        inputs,
        outputs,
        arena,
        c.macs,
        c.elementwise_ops,
        c.transcendental_ops,
    )
    program.definitions = (
        f"static float {function}_arena[{max(arena, 1)}];\n"
        + program.signature()
        + "\n{\n"
        + "\n".join(body + c.lines)
        + "\n}\n"
    )
    return program
