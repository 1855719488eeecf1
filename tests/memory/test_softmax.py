"""The written-out attention softmax equals torch.softmax, hidden keys and gradients included."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.layers import HIDDEN_KEY_SCORE, softmax


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), keys=st.integers(1, 12), scale=st.floats(0.1, 50.0))
def test_softmax_equals_torch_softmax_with_hidden_keys(seed: int, keys: int, scale: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(6, 3, keys, generator=generator) * scale
    hidden = torch.rand(6, 3, keys, generator=generator) < 0.4  # some rows entirely hidden
    scores = scores.masked_fill(hidden, HIDDEN_KEY_SCORE).requires_grad_()
    reference = scores.detach().clone().requires_grad_()
    upstream = torch.randn(6, 3, keys, generator=generator)
    found, expected = softmax(scores, dim=-1), torch.softmax(reference, dim=-1)
    torch.testing.assert_close(found, expected)
    (found * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(scores.grad, reference.grad)
