"""A vector copy numba cannot write by itself: `copy_lanes` converts a run of uint8 cells into a float32
(or uint8) buffer with one vector load, one conversion and one vector store.

Why an intrinsic: a loop of 11 copies compiles to an 8-wide vector step, three scalar conversions and the
runtime checks that the two arrays do not overlap (numba tells LLVM nothing about aliasing); a loop of a
constant 8 is unrolled to scalars for the same reason. Window rows of 11 cells as two overlapping 8-lane
copies cost ~18 ns per 121-cell window against ~34 ns for the loop (1,024 agents, 128x128 map, one
thread), and observation windows are most of a step's time; `observe.write_window` has the row schemes.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic


@intrinsic(prefer_literal=True)
def copy_lanes(typingctx, out, out_start, source, source_start, lanes):
    """out.flat[out_start + k] = source.flat[source_start + k] for k < lanes, as one vector operation.

    out: C-contiguous float32 or uint8 array of any rank; source: C-contiguous uint8 array; the starts:
    integer element offsets into the flat data; lanes: an integer literal. Nothing is bounds-checked: the
    caller guarantees both runs lie inside their arrays."""
    if not isinstance(lanes, types.IntegerLiteral):
        raise TypingError("copy_lanes: lanes must be an integer literal")
    arrays_fit = (
        isinstance(out, types.Array)
        and isinstance(source, types.Array)
        and out.layout == "C"
        and source.layout == "C"
        and out.dtype in (types.float32, types.uint8)
        and source.dtype == types.uint8
    )
    if not arrays_fit:
        raise TypingError(
            f"copy_lanes: needs C-contiguous float32/uint8 out, uint8 source; got {out}, {source}"
        )
    if not isinstance(out_start, types.Integer) or not isinstance(source_start, types.Integer):
        raise TypingError(f"copy_lanes: the starts must be integers, got {out_start}, {source_start}")
    count = lanes.literal_value

    def codegen(context, builder, signature, args):
        out_value, out_start_value, source_value, source_start_value, _ = args
        out_offset = context.cast(builder, out_start_value, signature.args[1], types.intp)
        source_offset = context.cast(builder, source_start_value, signature.args[3], types.intp)
        out_array = context.make_array(signature.args[0])(context, builder, out_value)
        source_array = context.make_array(signature.args[2])(context, builder, source_value)
        out_element = context.get_data_type(signature.args[0].dtype)
        source_vector = ir.VectorType(ir.IntType(8), count)
        out_vector = ir.VectorType(out_element, count)
        source_pointer = builder.bitcast(
            cgutils.pointer_add(builder, source_array.data, source_offset), source_vector.as_pointer()
        )
        cells = builder.load(source_pointer, align=1)
        if signature.args[0].dtype == types.float32:
            cells = builder.uitofp(cells, out_vector)
        out_bytes = builder.mul(
            out_offset, context.get_constant(types.intp, context.get_abi_sizeof(out_element))
        )
        out_pointer = builder.bitcast(
            cgutils.pointer_add(builder, out_array.data, out_bytes), out_vector.as_pointer()
        )
        builder.store(cells, out_pointer, align=1)
        return context.get_dummy_value()

    return types.void(out, out_start, source, source_start, lanes), codegen
