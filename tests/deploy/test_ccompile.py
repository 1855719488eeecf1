"""The torch -> C compiler, op by op against torch, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import memory
from deploy import c_runtime
from deploy.agent import AgentStep
from deploy.ccompile import compile_module, float_literal
from deploy.errors import UnsupportedOpError
from deploy.quantize import quantize_rows
from deploy.verify import compare, sample_inputs
from tests.deploy.helpers import max_error


class Lambda(nn.Module):
    """forward(x, y) = (fn(self, x, y),) with `layers` holding the parameters fn uses."""

    def __init__(self, fn, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.fn(self, x, y),)


def attention(m, x, y):
    seen = y[..., 0] > -0.5  # (B, H, Lk); the first key is always visible so no row is fully masked
    seen = torch.cat([torch.ones_like(seen[..., :1]), seen[..., 1:]], dim=-1)
    mask = seen.unsqueeze(2).expand(-1, -1, x.shape[2], -1)  # (B, H, Lq, Lk)
    return F.scaled_dot_product_attention(x, y, y, attn_mask=mask)


CASES = {
    "linear_relu": (lambda m, x, y: F.relu(m.layers[0](x)) + y, [nn.Linear(5, 7)], (2, 4, 5), (7,)),
    "conv_stride_pad": (
        lambda m, x, y: m.layers[0](x) * y,
        [nn.Conv2d(3, 6, 3, stride=2, padding=1)],
        (1, 3, 7, 7),
        (1, 6, 1, 1),
    ),
    "conv_groups_dilation": (
        lambda m, x, y: m.layers[0](x) - y,
        [nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False)],
        (2, 4, 5, 5),
        (5,),
    ),
    "layer_norm": (lambda m, x, y: m.layers[0](x + y), [nn.LayerNorm(5)], (3, 5), (3, 5)),
    "softmax_middle": (lambda m, x, y: (x * y).softmax(1), [], (2, 6, 3), (1, 1, 3)),
    "gelu_sigmoid_tanh": (
        lambda m, x, y: F.gelu(x) + F.gelu(y, approximate="tanh") + x.sigmoid() * y.tanh() + F.silu(x),
        [],
        (4, 6),
        (4, 6),
    ),
    "gru_cell": (lambda m, x, y: m.layers[0](x, y), [nn.GRUCell(5, 4)], (3, 5), (3, 4)),
    "masked_attention": (attention, [], (1, 2, 3, 4), (1, 2, 5, 4)),
    "reductions": (
        lambda m, x, y: torch.cat(
            [
                x.sum((0, 2), keepdim=True).flatten(),
                x.mean(-1).flatten(),
                x.amax(1).flatten(),
                x.amin(0).flatten(),
                (y > 0).any(-1).float().flatten(),
            ]
        ),
        [],
        (2, 3, 4),
        (2, 3),
    ),
    "views_cat_slice": (
        lambda m, x, y: torch.cat([x.permute(0, 2, 1), y.transpose(1, 2)[:, ::2]], dim=1).reshape(2, -1)[
            :, 1:-1
        ],
        [],
        (2, 3, 4),
        (2, 3, 6),
    ),
    "masked_fill_where": (
        lambda m, x, y: torch.where(y > 0, x.masked_fill(y < 0.5, -1e9), 2.0 / (1 + x * x)),
        [],
        (3, 4),
        (1, 4),
    ),
    "constants_and_arange": (
        lambda m, x, y: x + m.layers[0].weight.sum(0) * torch.arange(5.0) - 1,
        [nn.Linear(5, 3)],
        (2, 5),
        (1,),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_op_matches_torch(name, compile_c):
    fn, layers, x_shape, y_shape = CASES[name]
    torch.manual_seed(sum(map(ord, name)))
    module = Lambda(fn, *layers).eval()
    inputs = {"x": torch.randn(x_shape), "y": torch.randn(y_shape)}
    function = compile_c(module, inputs, ["out"])
    for _ in range(5):
        inputs = {"x": torch.randn(x_shape), "y": torch.randn(y_shape)}
        with torch.no_grad():
            expected = module(**inputs)
        assert max_error(function(*[v.numpy() for v in inputs.values()]), expected) <= 1e-5


def test_a_broken_kernel_is_caught(compile_c, monkeypatch):
    # The differential test must be able to fail: a softmax without max-subtraction normalizes wrongly.
    monkeypatch.setitem(
        c_runtime.KERNELS, "softmax", c_runtime.KERNELS["softmax"].replace("/= total", "/= total + 1.0f")
    )
    fn, _, x_shape, y_shape = CASES["softmax_middle"]
    inputs = {"x": torch.randn(x_shape), "y": torch.randn(y_shape)}
    module = Lambda(fn).eval()
    function = compile_c(module, inputs, ["out"])
    assert max_error(function(*[v.numpy() for v in inputs.values()]), module(**inputs)) > 1e-2


def test_unsupported_op_names_op_and_module():
    class Unsupported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(4, 4), nn.Hardswish())

        def forward(self, x, y):
            return (self.inner(x) + y,)

    with pytest.raises(
        UnsupportedOpError, match=r"cannot export aten\.\w+\.default in module 'inner\.1' \(Hardswish\): no C"
    ):
        compile_module(Unsupported(), {"x": torch.randn(1, 4), "y": torch.randn(1, 4)}, ["out"])


def test_integer_results_at_run_time_are_refused():
    module = Lambda(lambda m, x, y: (x.argmax(-1) + y).float())
    with pytest.raises(UnsupportedOpError, match=r"argmax.*int64"):
        compile_module(module, {"x": torch.randn(1, 4), "y": torch.randn(1)}, ["out"])


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, 1e-45, 3.4028235e38, -1.1754944e-38, 0.1, 1 / 3, 12345.678]
)
def test_float_literals_are_bit_exact(value):
    text = float_literal(value).strip("()").rstrip("f")
    assert np.float32(float(text)).tobytes() == np.float32(value).tobytes()


def test_int8_rows_reconstruct_within_half_a_step():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(6, 40)).astype(np.float32) * rng.uniform(0.01, 10, size=(6, 1)).astype(
        np.float32
    )
    matrix[2] = 0.0
    q, scale = quantize_rows(matrix)
    assert q.dtype == np.int8 and np.abs(q).max() <= 127
    assert np.all(np.abs(q * scale[:, None] - matrix) <= scale[:, None] / 2 + 1e-7)


@pytest.mark.parametrize("name", ["srmt", "rmt", "attention", "gru", "empty", "neighbour_attention"])
def test_every_memory_policy_compiles_and_matches_torch(name, compile_c):
    step = AgentStep(memory.make_policy(name, (3, 7, 7), preset="drone", scope="local", seed=1), 4)
    function = compile_c(step, step.example_inputs(), step.output_names)
    samples = sample_inputs(step, 60, seed=2)
    agreement = compare(step, lambda inputs: function(*[inputs[s.name] for s in function.inputs]), samples)
    assert agreement.max_abs_error <= 1e-5 and agreement.same_action_outside_ties == 1.0
