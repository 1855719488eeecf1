"""`agent_step` (a drone's step) exports to ONNX with only operations a small C runtime implements, and
ONNX Runtime reproduces torch on it."""

from __future__ import annotations

import warnings

import pytest
import torch

import memory

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# conv, linear (Gemm/MatMul), ReLU, GELU-tanh (Tanh, Mul, Add), LayerNorm, softmax attention, GRU cell
# (Sigmoid, Tanh, Sub), and the plumbing around them: masks, concatenation, reshapes
ALLOWED_OPS = {
    "Add",
    "And",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Equal",
    "Expand",
    "Flatten",
    "Gather",
    "Gemm",
    "Greater",
    "Identity",
    "LayerNormalization",
    "MatMul",
    "Mul",
    "Not",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Sub",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
}
INPUTS = ("obs", "memory", "history", "neighbour_memories", "neighbour_mask")


class OneAgent(torch.nn.Module):
    def __init__(self, policy: memory.SwarmPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs, own_memory, history, neighbour_memories, neighbour_mask):
        logits, state = self.policy.agent_step(
            obs, memory.PolicyState(own_memory, history), neighbour_memories, neighbour_mask
        )
        return logits, state.memory, state.history


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
def test_agent_step_exports_to_whitelisted_onnx_ops_and_matches_torch(name: str, tmp_path) -> None:
    policy = memory.make_policy(name, (3, 5, 5), preset="drone", seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    args = (
        torch.rand(1, 3, 5, 5, generator=generator),
        torch.randn(1, policy.memory_size, generator=generator),
        torch.randn(1, policy.config.history_length, 16, generator=generator),
        torch.randn(1, 3, 16, generator=generator),
        torch.tensor([[True, False, True]]),
    )
    model = OneAgent(policy)
    path = tmp_path / "policy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, path, opset_version=17, dynamo=False, input_names=list(INPUTS))
    graph = onnx.load(path).graph
    assert {node.op_type for node in graph.node} <= ALLOWED_OPS
    session = ort.InferenceSession(str(path))
    feeds = dict(zip(INPUTS, (a.numpy() for a in args), strict=True))
    found = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    with torch.no_grad():
        expected = model(*args)
    for onnx_out, torch_out in zip(found, expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(onnx_out), torch_out, atol=1e-5, rtol=1e-5)
