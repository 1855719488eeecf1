"""The C emitter of one compilation: buffers (slots of the static arena, born and last read per graph
node), constants named by their contents, elementwise loops over broadcast strided views, kernel calls,
and the error that names an unsupported op and the module it came from."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from deploy.cprogram import View, array_literal, contiguous_strides, float_literal
from deploy.errors import UnsupportedOpError
from deploy.quantize import quantize_rows


class Compiler:
    """Lowers an exported graph to C statements; one instance per compilation."""

    def __init__(
        self, int8: bool, float_modules: Sequence[str] = (), hessians: dict[str, np.ndarray] | None = None
    ) -> None:
        self.int8 = int8
        self.float_modules = tuple(float_modules)
        self.hessians = hessians or {}
        self.lines: list[str] = []
        self.constants: dict[str, tuple[str, int]] = {}
        self.kernels: set[str] = set()
        self.storage_sizes: list[int] = []
        self.storage_born: list[int] = []
        self.last_use: dict[int, int] = {}
        self.macs = 0
        self.elementwise_ops = 0
        self.transcendental_ops = 0
        self.node_index = 0

    # ---- buffers ----------------------------------------------------------------------------------------
    def new_buffer(self, shape: Sequence[int]) -> View:
        storage = len(self.storage_sizes)
        self.storage_sizes.append(max(math.prod(shape), 1))
        self.storage_born.append(self.node_index)
        return View(f"t{storage}", storage, tuple(shape), contiguous_strides(shape))

    def _define(self, kind: str, data: np.ndarray, literal: Callable[[float], str]) -> str:
        """A static const array named by its contents, so equal weights are stored once when linked."""
        name = f"gs_{kind}_{hashlib.sha1(data.tobytes()).hexdigest()[:16]}_{data.size}"
        ctype = "int8_t" if data.dtype == np.int8 else "float"
        definition = f"static const {ctype} {name}[{max(data.size, 1)}] = {array_literal(data, literal)};"
        self.constants[name] = (definition, data.nbytes)
        return name

    def constant(self, tensor: torch.Tensor) -> View:
        data = tensor.detach().to(torch.float32).contiguous().numpy()
        name = self._define("f", data, float_literal)
        return View(name, -1, tuple(data.shape), contiguous_strides(data.shape))

    def quantized_rows(self, matrix: np.ndarray, node: torch.fx.Node) -> tuple[str, str]:
        q, scale = quantize_rows(matrix.reshape(matrix.shape[0], -1), self.hessians.get(module_path(node)))
        return self._define("q", q, str), self._define("s", scale, float_literal)

    def quantizes(self, node: torch.fx.Node) -> bool:
        """Whether this node's fixed weights are stored as int8: int8 mode, outside `float_modules`."""
        path = module_path(node)
        return self.int8 and not any(path == m or path.startswith(m + ".") for m in self.float_modules)

    def as_view(self, value: object) -> View:
        if isinstance(value, View):
            return value
        if isinstance(value, torch.Tensor):
            return self.constant(value)
        return self.constant(torch.tensor(float(value)))

    def touch(self, value: object) -> None:
        """Record that the current node reads `value` (keeps its arena slot alive)."""
        if isinstance(value, View) and value.storage >= 0:
            self.last_use[value.storage] = self.node_index
        elif isinstance(value, list | tuple):
            for item in value:
                self.touch(item)

    def contiguous(self, view: View) -> View:
        if view.is_contiguous():
            return view
        out = self.new_buffer(view.shape)
        self.elementwise(out, [view], "{0}", count=False)
        return out

    # ---- loops ------------------------------------------------------------------------------------------
    def elementwise(
        self, out: View, operands: Sequence[View | str], expression: str, count: bool = True
    ) -> None:
        """out[i] = expression(operands[i]...), operands broadcast to out.shape; str operands are literals."""
        shape = list(out.shape)
        views = [out] + [op for op in operands if isinstance(op, View)]
        strides = [list(broadcast_strides(v, out.shape)) for v in views]
        shape, strides = collapse(shape, strides)
        index = [f"i{d}" for d in range(len(shape))]
        refs = []
        for view, view_strides in zip(views, strides, strict=True):
            terms = [str(view.offset)] if view.offset else []
            terms += [f"{i} * {s}" if s != 1 else i for i, s in zip(index, view_strides, strict=True) if s]
            refs.append(f"{view.base}[{' + '.join(terms) or '0'}]")
        args, ref_iter = [], iter(refs[1:])
        for op in operands:
            args.append(next(ref_iter) if isinstance(op, View) else op)
        indent = "    "
        for d, size in enumerate(shape):
            self.lines.append(f"{indent}for (int {index[d]} = 0; {index[d]} < {size}; ++{index[d]})")
            indent += "    "
        self.lines.append(f"{indent}{refs[0]} = {expression.format(*args)};")
        if count:
            self.elementwise_ops += out.numel
            self.transcendental_ops += out.numel * sum(expression.count(f) for f in ("expf", "tanhf", "erff"))

    def call(self, kernel: str, *args: object) -> None:
        self.kernels.add(kernel)
        self.lines.append(f"    gs_{kernel}({', '.join(str(a) for a in args)});")


def broadcast_strides(view: View, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides that walk `view` broadcast to `shape` (0 along broadcast dimensions)."""
    lead = len(shape) - len(view.shape)
    strides = [0] * lead
    for size, stride, target in zip(view.shape, view.strides, shape[lead:], strict=True):
        strides.append(0 if size == 1 and target != 1 else stride)
    return tuple(strides)


def collapse(shape: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent dims that every operand walks contiguously, and drop size-1 dims (fewer loops)."""
    keep = [d for d, size in enumerate(shape) if size != 1]
    shape = [shape[d] for d in keep]
    strides = [[s[d] for d in keep] for s in strides]
    d = len(shape) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * shape[d + 1] for s in strides):
            shape[d] *= shape.pop(d + 1)
            for s in strides:
                s[d] = s.pop(d + 1)
        d -= 1
    return shape, strides


def ptr(view: View) -> str:
    """A C pointer expression to the first element of `view`."""
    return f"{view.base} + {view.offset}" if view.offset else view.base


def module_path(node: torch.fx.Node) -> str:
    """The dotted path of the innermost module a graph node comes from ("" for the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _module_of(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "the top-level module"
    path, kind = list(stack.values())[-1]
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return f"module '{path or '<root>'}' ({kind_name.rsplit('.', 1)[-1]})"


def fail(node: torch.fx.Node, why: str) -> UnsupportedOpError:
    """The UnsupportedOpError for `node`, naming its op, its module and `why`."""
    return UnsupportedOpError(f"cannot export {node.target} in {_module_of(node)}: {why}")
