"""The step kernels' buffers as one numba StructRef, `StepState`, so that a step call unboxes one object.

Why not a tuple of arrays: numba unboxes each array of an argument on every call (a type check and a
fresh MemInfo per array), ~55 ns each; the 33 step buffers cost ~1.8 us per `GridEnv.step`, a fifth of
a 64-agent step. A StructRef is unboxed by reading one pointer; its fields hold references to the very
arrays the env owns (no copies), so kernels see and write the env's buffers.

`step_state(named_buffers)` builds one with a field per (name, array) pair; `sim.state.EnvState` says
which buffers the kernels take, and their shapes and dtypes. Rebuild it whenever a buffer is reallocated.
"""

from __future__ import annotations

import numpy as np
from numba import njit, typeof, types
from numba.core.errors import TypingError
from numba.experimental import structref
from numba.extending import intrinsic


@structref.register
class StepStateType(types.StructRef):
    """The numba type of a `StepState`: one field per buffer, typed by its array."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(field_type)) for name, field_type in fields)


class StepState(structref.StructRefProxy):
    """The step buffers, held by reference, as one object for the step kernels (`step_state` builds it)."""

    __slots__ = ()


structref.define_boxing(StepStateType, StepState)


@intrinsic
def _fill_fields(typingctx, state, buffers):
    """state.<field i> = buffers[i] for every field of a freshly allocated (all-null) StructRef state."""
    if not isinstance(state, StepStateType) or not isinstance(buffers, types.BaseTuple):
        raise TypingError(f"_fill_fields: needs a StepState and a tuple, got {state}, {buffers}")
    field_types = list(state.field_dict.values())
    if field_types != list(buffers.types):
        raise TypingError(f"_fill_fields: the buffers {buffers} do not match the fields of {state}")

    def codegen(context, builder, signature, args):
        state_value, buffers_value = args
        data = structref._Utils(context, builder, signature.args[0]).get_data_struct(state_value)
        for index, (name, field_type) in enumerate(signature.args[0].field_dict.items()):
            value = builder.extract_value(buffers_value, index)
            context.nrt.incref(builder, field_type, value)
            setattr(data, name, value)
        return context.get_dummy_value()

    return types.void(state, buffers), codegen


@njit(cache=True)
def _new_state(state_type, buffers):
    state = structref.new(state_type)
    _fill_fields(state, buffers)
    return state


def step_state(named_buffers: tuple[tuple[str, np.ndarray], ...]) -> StepState:
    """A `StepState` with field `name` = `buffer` for each pair, holding the buffers by reference."""
    fields = [(name, typeof(buffer)) for name, buffer in named_buffers]
    buffers = tuple(buffer for _, buffer in named_buffers)
    return _new_state(StepStateType(fields), buffers)
