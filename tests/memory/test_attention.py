"""Attention's eager form (head sums by an indicator matrix) equals its traced per-head form."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.layers import Attention


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    heads=st.sampled_from([1, 2, 4]),
    queries=st.integers(1, 4),
    keys=st.integers(1, 10),
    masked=st.booleans(),
)
def test_eager_attention_equals_the_per_head_form(
    seed: int, heads: int, queries: int, keys: int, masked: bool
) -> None:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    attention = Attention(8, heads)
    x = torch.randn(5, queries, 8, generator=generator, requires_grad=True)
    source = torch.randn(5, keys, 8, generator=generator, requires_grad=True)
    visible = torch.rand(5, keys, generator=generator) < 0.6 if masked else None  # some rows all hidden
    upstream = torch.randn(5, queries, 8, generator=generator)
    found = attention(x, source, visible)
    found_grads = torch.autograd.grad((found * upstream).sum(), [x, source, *attention.parameters()])
    expected = attention._per_head(x, source, visible)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [x, source, *attention.parameters()])
    torch.testing.assert_close(found, expected)
    for found_grad, expected_grad in zip(found_grads, expected_grads, strict=True):
        torch.testing.assert_close(found_grad, expected_grad)
