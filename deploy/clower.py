"""The op table: how each core ATen op of an exported graph becomes C (elementwise expressions, strided
views that cost no code, matmuls and convolutions with optional int8 weights, softmax, layer norm,
reductions, concatenation), and the lowering of one graph node (constants folded at export time)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np
import torch

from deploy.cemit import Compiler, broadcast_strides, fail, ptr
from deploy.cprogram import View, contiguous_strides, float_literal

aten = torch.ops.aten
FLOAT_TYPES = (torch.float32, torch.bool)

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


def _operand(c: Compiler, value: object) -> View | str:
    """A runtime view, or a literal for scalars and one-element constants."""
    if isinstance(value, View):
        return value
    if isinstance(value, torch.Tensor):
        return float_literal(value.item()) if value.numel() == 1 else c.constant(value)
    return float_literal(float(value))


def _out_meta(node: torch.fx.Node) -> tuple[tuple[int, ...], torch.dtype]:
    val = node.meta["val"]
    return tuple(int(s) for s in val.shape), val.dtype


def lower_elementwise(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
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
        raise fail(node, "not an elementwise operation")
    out = c.new_buffer(shape)
    c.elementwise(out, [_operand(c, op) for op in operands], expression)
    return out


def lower_view(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> object:
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
    return View(x.base, x.storage, tuple(shape), broadcast_strides(x, tuple(shape)), x.offset)


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


def lower_matmul(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
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
        bias_args = (ptr(bias_view), *broadcast_strides(bias_view, (M, N)))
    scalars = (float_literal(beta), float_literal(alpha))
    if isinstance(w, torch.Tensor) and not batched and c.quantizes(node):
        q, scale = c.quantized_rows(w.detach().t().contiguous().numpy(), node)  # (N, K): a scale per output
        c.call("matmul_q8", M, K, N, ptr(a), a_m, a_k, q, scale, *bias_args, *scalars, out.base)
        return out
    if isinstance(w, torch.Tensor):  # stored (N, K) so the inner loop walks a weight row
        rows = c.constant(w.detach().transpose(-1, -2).contiguous())
        w = View(rows.base, -1, tuple(w.shape), rows.strides[:-2] + rows.strides[-1:] + rows.strides[-2:-1])
    w_b, w_k, w_n = w.strides if batched else (0, *w.strides)
    c.call("matmul", B, M, K, N, ptr(a), a_b, a_m, a_k, ptr(w), w_b, w_k, w_n, *bias_args, *scalars, out.base)
    return out


def lower_convolution(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    x, weight, bias, stride, padding, dilation, transposed, _, groups = args[:9]
    if transposed or not isinstance(weight, torch.Tensor) or weight.dim() != 4 or len(x.shape) != 4:
        raise fail(node, "only 2-D, non-transposed convolutions with fixed weights are supported")
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
        ptr(x),
        *weights,
        bias_ptr,
        out.base,
    )
    return out


def lower_softmax(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
    x = c.contiguous(args[0])
    dim = args[1] % len(x.shape)
    out = c.new_buffer(x.shape)
    c.transcendental_ops += x.numel
    c.call("softmax", math.prod(x.shape[:dim]), x.shape[dim], math.prod(x.shape[dim + 1 :]), ptr(x), out.base)
    return out


def lower_layer_norm(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> list:
    x, normalized, gamma, beta, eps = args[:5]
    x = c.contiguous(x)
    n = math.prod(normalized)
    out = c.new_buffer(x.shape)
    params = [c.constant(p).base if isinstance(p, torch.Tensor) else "0" for p in (gamma, beta)]
    c.elementwise_ops += 4 * x.numel
    c.call("layer_norm", x.numel // n, n, ptr(x), *params, float_literal(eps), out.base)
    return [out, None, None]  # mean and rstd are not computed: a graph reading them fails at getitem


def lower_reduction(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
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
    c.call("reduce", x.numel // max(n, 1), n, REDUCTIONS[node.target], ptr(moved), out.base)
    return out


def lower_cat(c: Compiler, node: torch.fx.Node, args: list, kwargs: dict) -> View:
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
LOWERINGS: dict[object, Callable[[Compiler, torch.fx.Node, list, dict], object]] = {
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


def lower_node(c: Compiler, node: torch.fx.Node, env: dict[torch.fx.Node, object]) -> object:
    """The C of one call_function node (a View, a constant folded at export time, or a list of them);
    `env` maps the graph's earlier nodes to theirs. UnsupportedOpError for what the runtime lacks."""
    args = _map(list(node.args), lambda a: env[a] if isinstance(a, torch.fx.Node) else a)
    kwargs = {
        k: _map(v, lambda a: env[a] if isinstance(a, torch.fx.Node) else a) for k, v in node.kwargs.items()
    }
    if node.target in IGNORED:
        return None
    if node.target is operator.getitem:
        item = args[0][args[1]]
        if item is None:
            raise fail(node, "only the normalized output of layer_norm is available in C")
        return item
    if node.target in SHAPE_ONLY:  # the values never depend on the runtime input, only its shape
        return node.target(torch.zeros(_out_meta(node)[0], dtype=_out_meta(node)[1]), *args[1:], **kwargs)
    if not _has_runtime(args) and not _has_runtime(list(kwargs.values())):
        return node.target(*args, **kwargs)  # known at export time: fold to a constant
    _, dtype = _out_meta(node) if "val" in node.meta and hasattr(node.meta["val"], "dtype") else (None, None)
    if dtype is not None and dtype not in FLOAT_TYPES:
        raise fail(node, f"produces {dtype} at run time; the C runtime computes float32 and bool only")
    lowering = LOWERINGS.get(node.target)
    if lowering is None:
        raise fail(node, "no C kernel for this operation")
    c.touch(args)
    c.touch(list(kwargs.values()))
    return lowering(c, node, args, kwargs)
