"""Compile a torch module (one agent's step, batch 1, static shapes) to a C99 function.

The module is traced with `torch.export` and decomposed to core ATen ops. Each op is lowered to C from an
explicit table; anything else fails with the op and the module it came from. Ops whose inputs are all known
at export time (weights, `arange`, `full`, ...) are evaluated here and become constants. Views (reshape,
permute, expand, slice, ...) cost no code: a value is a strided view of a buffer, and the kernels read
strides. Every other op writes a fresh contiguous buffer in one static float arena whose slots are reused
once their last reader has run (first-fit over live ranges), so the arena size is the activation RAM.
"""

from __future__ import annotations

import hashlib
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deploy.c_runtime import KERNELS
from deploy.errors import UnsupportedOpError
from deploy.quantize import quantize_rows

aten = torch.ops.aten
FLOAT_TYPES = (torch.float32, torch.bool)


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


def _array_literal(values: np.ndarray, fmt: Callable[[float], str]) -> str:
    items = [fmt(v) for v in values.ravel().tolist()] or ["0"]  # C99 has no empty initializer
    lines = [", ".join(items[i : i + 8]) for i in range(0, len(items), 8)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


class _Compiler:
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
        definition = f"static const {ctype} {name}[{max(data.size, 1)}] = {_array_literal(data, literal)};"
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
        strides = [list(_broadcast_strides(v, out.shape)) for v in views]
        shape, strides = _collapse(shape, strides)
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


def _broadcast_strides(view: View, shape: tuple[int, ...]) -> tuple[int, ...]:
    lead = len(shape) - len(view.shape)
    strides = [0] * lead
    for size, stride, target in zip(view.shape, view.strides, shape[lead:], strict=True):
        strides.append(0 if size == 1 and target != 1 else stride)
    return tuple(strides)


def _collapse(shape: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
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


def _ptr(view: View) -> str:
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


def _fail(node: torch.fx.Node, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"cannot export {node.target} in {_module_of(node)}: {why}")


# ---- op table ---------------------------------------------------------------------------------------
UNARY: dict[object, str] = {
    aten.relu.default: "({0} > 0.0f ? {0} : 0.0f)",
    aten.sigmoid.default: "(1.0f / (1.0f + expf(-{0})))",
    aten.tanh.default: "tanhf({0})",
    aten.exp.default: "expf({0})",
    aten.neg.default: "(-{0})",
    aten.reciprocal.default: "(1.0f / {0})",
    aten.sqrt.default: "sqrtf({0})",
    aten.rsqrt.default: "(1.0f / sqrtf({0}))",
    aten.abs.default: "fabsf({0})",
    aten.logical_not.default: "({0} == 0.0f ? 1.0f : 0.0f)",
    aten.bitwise_not.default: "({0} == 0.0f ? 1.0f : 0.0f)",
    aten.silu.default: "({0} / (1.0f + expf(-{0})))",
}
GELU = {
    "none": "(0.5f * {0} * (1.0f + erff({0} * 0.707106781f)))",
    "tanh": "(0.5f * {0} * (1.0f + tanhf(0.797884561f * ({0} + 0.044715f * {0} * {0} * {0}))))",
}
BINARY: dict[object, str] = {
    aten.mul.Tensor: "({0} * {1})",
    aten.mul.Scalar: "({0} * {1})",
    aten.div.Tensor: "({0} / {1})",
    aten.div.Scalar: "({0} / {1})",
    aten.maximum.default: "({0} > {1} ? {0} : {1})",
    aten.minimum.default: "({0} < {1} ? {0} : {1})",
    aten.clamp_min.default: "({0} > {1} ? {0} : {1})",
    aten.clamp_max.default: "({0} < {1} ? {0} : {1})",
    aten.eq.Tensor: "({0} == {1} ? 1.0f : 0.0f)",
    aten.eq.Scalar: "({0} == {1} ? 1.0f : 0.0f)",
    aten.ne.Tensor: "({0} != {1} ? 1.0f : 0.0f)",
    aten.ne.Scalar: "({0} != {1} ? 1.0f : 0.0f)",
    aten.gt.Tensor: "({0} > {1} ? 1.0f : 0.0f)",
    aten.gt.Scalar: "({0} > {1} ? 1.0f : 0.0f)",
    aten.ge.Tensor: "({0} >= {1} ? 1.0f : 0.0f)",
    aten.ge.Scalar: "({0} >= {1} ? 1.0f : 0.0f)",
    aten.lt.Tensor: "({0} < {1} ? 1.0f : 0.0f)",
    aten.lt.Scalar: "({0} < {1} ? 1.0f : 0.0f)",
    aten.le.Tensor: "({0} <= {1} ? 1.0f : 0.0f)",
    aten.le.Scalar: "({0} <= {1} ? 1.0f : 0.0f)",
    aten.logical_and.default: "(({0} != 0.0f && {1} != 0.0f) ? 1.0f : 0.0f)",
    aten.bitwise_and.Tensor: "(({0} != 0.0f && {1} != 0.0f) ? 1.0f : 0.0f)",
    aten.logical_or.default: "(({0} != 0.0f || {1} != 0.0f) ? 1.0f : 0.0f)",
    aten.bitwise_or.Tensor: "(({0} != 0.0f || {1} != 0.0f) ? 1.0f : 0.0f)",
}
WITH_ALPHA = {aten.add.Tensor: "+", aten.add.Scalar: "+", aten.sub.Tensor: "-", aten.sub.Scalar: "-"}
REDUCTIONS = {
    aten.sum.dim_IntList: 0,
    aten.mean.dim: 1,
    aten.amax.default: 2,
    aten.amin.default: 3,
    aten.any.dim: 4,
    aten.any.dims: 4,
    aten.any.default: 4,
}
SHAPE_ONLY = (aten.full_like.default, aten.zeros_like.default, aten.ones_like.default)
IGNORED = (aten._assert_tensor_metadata.default,)
ALIASES = (
    aten.alias.default,
    aten.clone.default,
    aten.detach.default,
    aten.lift_fresh_copy.default,
    aten.contiguous.default,
)


def _operand(c: _Compiler, value: object) -> View | str:
    """A runtime view, or a literal for scalars and one-element constants."""
    if isinstance(value, View):
        return value
    if isinstance(value, torch.Tensor):
        return float_literal(value.item()) if value.numel() == 1 else c.constant(value)
    return float_literal(float(value))


def _out_meta(node: torch.fx.Node) -> tuple[tuple[int, ...], torch.dtype]:
    val = node.meta["val"]
    return tuple(int(s) for s in val.shape), val.dtype


def lower_elementwise(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    shape, _ = _out_meta(node)
    target = node.target
    if target in UNARY:
        operands, expression = [args[0]], UNARY[target]
    elif target == aten.gelu.default:
        operands, expression = [args[0]], GELU[kwargs.get("approximate", "none")]
    elif target in BINARY:
        operands, expression = args[:2], BINARY[target]
    elif target in WITH_ALPHA:
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        scaled = "{1}" if alpha == 1 else f"({float_literal(alpha)} * {{1}})"
        operands, expression = args[:2], f"({{0}} {WITH_ALPHA[target]} {scaled})"
    elif target == aten.where.self:
        operands, expression = args[:3], "({0} != 0.0f ? {1} : {2})"
    else:
        raise _fail(node, "not an elementwise operation")
    out = c.new_buffer(shape)
    c.elementwise(out, [_operand(c, op) for op in operands], expression)
    return out


def lower_view(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> object:
    """Ops that only re-describe memory: no code is emitted (a copy when a reshape needs one)."""
    target, x = node.target, args[0]
    if (
        target == aten._to_copy.default
        and _out_meta(node)[1] == torch.bool
        and node.args[0].meta["val"].dtype != torch.bool
    ):
        out = c.new_buffer(x.shape)
        c.elementwise(out, [x], "({0} != 0.0f ? 1.0f : 0.0f)")
        return out
    if target in ALIASES or target == aten._to_copy.default:
        return x
    if target == aten.copy.default:  # functional copy: the source broadcast to the destination's shape
        return _expand(c.as_view(args[1]), tuple(args[0].shape))
    if target in (aten.split_with_sizes.default, aten.split.Tensor):
        dim = (args[2] if len(args) > 2 else kwargs.get("dim", 0)) % len(x.shape)
        sizes = args[1] if isinstance(args[1], list) else _chunks(x.shape[dim], args[1])
        starts = np.cumsum([0, *sizes])
        return [_slice(x, dim, int(s), int(s + n), 1) for s, n in zip(starts, sizes, strict=False)]
    if target == aten.unbind.int:
        dim = (args[1] if len(args) > 1 else 0) % len(x.shape)
        return [_select(x, dim, i) for i in range(x.shape[dim])]
    shape, _ = _out_meta(node)
    if target in (aten.view.default, aten._unsafe_view.default, aten.reshape.default):
        x = c.contiguous(x)
        return View(x.base, x.storage, shape, contiguous_strides(shape), x.offset)
    if target == aten.expand.default:
        return _expand(x, shape)
    if target == aten.permute.default:
        dims = [d % len(x.shape) for d in args[1]]
        return View(x.base, x.storage, shape, tuple(x.strides[d] for d in dims), x.offset)
    if target in (aten.t.default, aten.transpose.int):
        dims = list(range(len(x.shape)))
        a, b = (args[1] % len(dims), args[2] % len(dims)) if len(args) > 2 else (0, 1)
        dims[a], dims[b] = dims[b], dims[a]
        return View(x.base, x.storage, shape, tuple(x.strides[d] for d in dims), x.offset)
    if target == aten.select.int:
        return _select(x, args[1] % len(x.shape), args[2])
    if target == aten.slice.Tensor:
        dim = args[1] % len(x.shape) if len(args) > 1 else 0
        start, end, step = slice(*(list(args[2:5]) + [None] * (3 - len(args[2:5])))).indices(x.shape[dim])
        return _slice(x, dim, start, end, step)
    # unsqueeze / squeeze: drop or add size-1 dims, whose stride never matters
    kept = [(s, st) for s, st in zip(x.shape, x.strides, strict=True) if s != 1]
    strides, it = [], iter(kept)
    for size in shape:
        strides.append(next(it)[1] if size != 1 else 1)
    return View(x.base, x.storage, shape, tuple(strides), x.offset)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - s) for s in range(0, total, size)]


def _expand(x: View, shape: tuple[int, ...]) -> View:
    return View(x.base, x.storage, tuple(shape), _broadcast_strides(x, tuple(shape)), x.offset)


def _select(x: View, dim: int, index: int) -> View:
    index %= x.shape[dim]
    return View(
        x.base,
        x.storage,
        x.shape[:dim] + x.shape[dim + 1 :],
        x.strides[:dim] + x.strides[dim + 1 :],
        x.offset + index * x.strides[dim],
    )


def _slice(x: View, dim: int, start: int, end: int, step: int) -> View:
    size = max(0, (end - start + step - 1) // step)
    return View(
        x.base,
        x.storage,
        (*x.shape[:dim], size, *x.shape[dim + 1 :]),
        (*x.strides[:dim], x.strides[dim] * step, *x.strides[dim + 1 :]),
        x.offset + start * x.strides[dim],
    )


def lower_matmul(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    if node.target == aten.addmm.default:
        bias, a, w = args[:3]
        beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    else:
        bias, (a, w), beta, alpha = None, args[:2], 1, 1
    shape, _ = _out_meta(node)
    out = c.new_buffer(shape)
    batched = node.target == aten.bmm.default
    B, M, N = shape if batched else (1, *shape)
    K = a.shape[-1]
    c.macs += B * M * N * K
    a = c.as_view(a)
    a_b, a_m, a_k = a.strides if batched else (0, *a.strides)
    bias_args: tuple[object, ...] = ("0", 0, 0)
    if bias is not None:
        bias_view = c.as_view(bias)
        bias_args = (_ptr(bias_view), *_broadcast_strides(bias_view, (M, N)))
    scalars = (float_literal(beta), float_literal(alpha))
    if isinstance(w, torch.Tensor) and not batched and c.quantizes(node):
        q, scale = c.quantized_rows(w.detach().t().contiguous().numpy(), node)  # (N, K): a scale per output
        c.call("matmul_q8", M, K, N, _ptr(a), a_m, a_k, q, scale, *bias_args, *scalars, out.base)
        return out
    if isinstance(w, torch.Tensor):  # stored (N, K) so the inner loop walks a weight row
        rows = c.constant(w.detach().transpose(-1, -2).contiguous())
        w = View(rows.base, -1, tuple(w.shape), rows.strides[:-2] + rows.strides[-1:] + rows.strides[-2:-1])
    w_b, w_k, w_n = w.strides if batched else (0, *w.strides)
    c.call(
        "matmul", B, M, K, N, _ptr(a), a_b, a_m, a_k, _ptr(w), w_b, w_k, w_n, *bias_args, *scalars, out.base
    )
    return out


def lower_convolution(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    x, weight, bias, stride, padding, dilation, transposed, _, groups = args[:9]
    if transposed or not isinstance(weight, torch.Tensor) or weight.dim() != 4 or len(x.shape) != 4:
        raise _fail(node, "only 2-D, non-transposed convolutions with fixed weights are supported")
    x = c.contiguous(x)
    shape, _ = _out_meta(node)
    out = c.new_buffer(shape)
    B, C, H, W = x.shape
    O, _, KH, KW = weight.shape
    c.macs += math.prod(shape) * (C // groups) * KH * KW
    if c.quantizes(node):
        q, scale = c.quantized_rows(weight.detach().numpy(), node)
        weights = ("0", q, scale)
    else:
        weights = (c.constant(weight).base, "0", "0")
    bias_ptr = c.constant(bias).base if isinstance(bias, torch.Tensor) else "0"
    c.call(
        "conv2d",
        B,
        C,
        H,
        W,
        O,
        KH,
        KW,
        shape[2],
        shape[3],
        *stride,
        *padding,
        *dilation,
        groups,
        _ptr(x),
        *weights,
        bias_ptr,
        out.base,
    )
    return out


def lower_softmax(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    x = c.contiguous(args[0])
    dim = args[1] % len(x.shape)
    out = c.new_buffer(x.shape)
    c.transcendental_ops += x.numel
    c.call(
        "softmax", math.prod(x.shape[:dim]), x.shape[dim], math.prod(x.shape[dim + 1 :]), _ptr(x), out.base
    )
    return out


def lower_layer_norm(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> list:
    x, normalized, gamma, beta, eps = args[:5]
    x = c.contiguous(x)
    n = math.prod(normalized)
    out = c.new_buffer(x.shape)
    params = [c.constant(p).base if isinstance(p, torch.Tensor) else "0" for p in (gamma, beta)]
    c.elementwise_ops += 4 * x.numel
    c.call("layer_norm", x.numel // n, n, _ptr(x), *params, float_literal(eps), out.base)
    return [out, None, None]  # mean and rstd are not computed: a graph reading them fails at getitem


def lower_reduction(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    x = args[0]
    rank = len(x.shape)
    if node.target == aten.any.default:
        dims = list(range(rank))
    else:
        raw = args[1] if len(args) > 1 else kwargs.get("dim")
        dims = (
            list(range(rank))
            if raw is None or raw == []
            else [d % rank for d in ([raw] if isinstance(raw, int) else raw)]
        )
    rest = [d for d in range(rank) if d not in dims]
    moved = c.contiguous(
        View(
            x.base,
            x.storage,
            tuple(x.shape[d] for d in rest + dims),
            tuple(x.strides[d] for d in rest + dims),
            x.offset,
        )
    )
    shape, _ = _out_meta(node)
    out = c.new_buffer(shape)
    n = math.prod(x.shape[d] for d in dims)
    c.elementwise_ops += x.numel
    c.call("reduce", x.numel // max(n, 1), n, REDUCTIONS[node.target], _ptr(moved), out.base)
    return out


def lower_cat(c: _Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    shape, _ = _out_meta(node)
    dim = (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % len(shape)
    out = c.new_buffer(shape)
    start = 0
    for part in args[0]:
        part = c.as_view(part)
        if part.numel == 0:
            continue
        size = part.shape[dim]
        c.elementwise(_slice(out, dim, start, start + size, 1), [part], "{0}", count=False)
        start += size
    return out


VIEW_OPS = (
    *ALIASES,
    aten._to_copy.default,
    aten.copy.default,
    aten.split_with_sizes.default,
    aten.split.Tensor,
    aten.unbind.int,
    aten.view.default,
    aten._unsafe_view.default,
    aten.reshape.default,
    aten.expand.default,
    aten.permute.default,
    aten.t.default,
    aten.transpose.int,
    aten.select.int,
    aten.slice.Tensor,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze.default,
)
LOWERINGS: dict[object, Callable[[_Compiler, torch.fx.Node, list, dict], object]] = {
    **dict.fromkeys([*UNARY, *BINARY, *WITH_ALPHA, aten.gelu.default, aten.where.self], lower_elementwise),
    **dict.fromkeys(VIEW_OPS, lower_view),
    **dict.fromkeys([aten.mm.default, aten.addmm.default, aten.bmm.default], lower_matmul),
    aten.convolution.default: lower_convolution,
    aten._softmax.default: lower_softmax,
    aten.softmax.int: lower_softmax,
    aten.native_layer_norm.default: lower_layer_norm,
    **dict.fromkeys(REDUCTIONS, lower_reduction),
    aten.cat.default: lower_cat,
}


def supported_ops() -> list[str]:
    """The names of the ATen ops the C runtime implements."""
    return sorted(str(op) for op in LOWERINGS)


def _map(value: object, fn: Callable[[object], object]) -> object:
    if isinstance(value, list | tuple):
        return [_map(v, fn) for v in value]
    return fn(value)


def _has_runtime(value: object) -> bool:
    if isinstance(value, list | tuple):
        return any(_has_runtime(v) for v in value)
    return isinstance(value, View)


def _lower_node(c: _Compiler, node: torch.fx.Node, env: dict[torch.fx.Node, object]) -> object:
    args = _map(list(node.args), lambda a: env[a] if isinstance(a, torch.fx.Node) else a)
    kwargs = {
        k: _map(v, lambda a: env[a] if isinstance(a, torch.fx.Node) else a) for k, v in node.kwargs.items()
    }
    if node.target in IGNORED:
        return None
    if node.target is operator.getitem:
        item = args[0][args[1]]
        if item is None:
            raise _fail(node, "only the normalized output of layer_norm is available in C")
        return item
    if node.target in SHAPE_ONLY:  # the values never depend on the runtime input, only its shape
        return node.target(torch.zeros(_out_meta(node)[0], dtype=_out_meta(node)[1]), *args[1:], **kwargs)
    if not _has_runtime(args) and not _has_runtime(list(kwargs.values())):
        return node.target(*args, **kwargs)  # known at export time: fold to a constant
    _, dtype = _out_meta(node) if "val" in node.meta and hasattr(node.meta["val"], "dtype") else (None, None)
    if dtype is not None and dtype not in FLOAT_TYPES:
        raise _fail(node, f"produces {dtype} at run time; the C runtime computes float32 and bool only")
    lowering = LOWERINGS.get(node.target)
    if lowering is None:
        raise _fail(node, "no C kernel for this operation")
    c.touch(args)
    c.touch(list(kwargs.values()))
    return lowering(c, node, args, kwargs)


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
    c = _Compiler(int8, float_modules, hessians)
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
            env[node] = _lower_node(c, node, env)
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


def _assign_arena(c: _Compiler) -> tuple[list[int], int]:
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


def _assemble(c: _Compiler, function: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> CProgram:
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
