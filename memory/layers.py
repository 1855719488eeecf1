"""Building blocks: the ResNet observation encoder and a pre-LayerNorm transformer block.

Only operations a small C runtime implements: Conv2d 3x3, Linear, ReLU, GELU (tanh approximation, as
GPT-2's `gelu_new`), LayerNorm and softmax attention with an additive key mask. No dropout, no batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Windows of at least this many cells are convolved channels-last, smaller ones in torch's default NCHW: the
# forward of oneDNN's channels-last convolutions was about 2x faster on 11 x 11 windows and 1.6x slower on
# 5 x 5 (8 filters, one thread, Intel Xeon; docs/results.md).
CHANNELS_LAST_MIN_CELLS = 26

# Added to the attention score of a hidden key: finite, so a row with every key hidden stays finite
# (its output is then discarded by the caller), yet exp() of it underflows to exactly zero.
HIDDEN_KEY_SCORE = -1e9


class ResidualBlock(nn.Module):
    """Pre-activation residual block without normalization: x + conv(relu(conv(relu(x))))."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(filters, filters, 3, padding=1)
        self.conv_2 = nn.Conv2d(filters, filters, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_2(F.relu(self.conv_1(F.relu(x))))


class ResnetEncoder(nn.Module):
    """Observation window (B, C, F, F) -> encoding (B, D): conv, residual blocks, ReLU, Linear, ReLU."""

    def __init__(self, obs_shape: tuple[int, int, int], filters: int, res_blocks: int, width: int) -> None:
        super().__init__()
        channels, height, width_cells = obs_shape
        self.conv_in = nn.Conv2d(channels, filters, 3, padding=1)
        self.res_blocks = nn.Sequential(*[ResidualBlock(filters) for _ in range(res_blocks)])
        self.project = nn.Linear(filters * height * width_cells, width)
        large = height * width_cells >= CHANNELS_LAST_MIN_CELLS
        self.memory_format = torch.channels_last if large else torch.contiguous_format

    def forward(self, obs: Tensor) -> Tensor:
        obs = obs.contiguous(memory_format=self.memory_format)
        x = F.relu(self.res_blocks(self.conv_in(obs)))  # (B, filters, F, F)
        return F.relu(self.project(x.flatten(1)))  # (B, filters*F*F) -> (B, D)


class Attention(nn.Module):
    """Multi-head softmax attention of queries x over a source sequence, with hidden keys masked out."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (width // heads) ** -0.5  # a Python constant: a traced shape would export as Pow
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        head_of_channel = torch.arange(width) // (width // heads)  # (D,)
        indicator = (head_of_channel[:, None] == torch.arange(heads)).float()  # (D, nh): d is in head h
        self.register_buffer("head_indicator", indicator, persistent=False)  # derived: not in the state dict

    def forward(self, x: Tensor, source: Tensor, visible: Tensor | None) -> Tensor:
        """x (G, Q, D) attends over source (G, P, D); visible (G, P) bool, None = all. Returns (G, Q, D).

        In eager mode each head's scores are channel products summed by one matrix product with
        `head_indicator`: with head size 4 this is 1.2-1.3x faster on CPU than per-head batched matrix
        products (thousands of 2 x 4 matrices, heads split by copies). Traced or exported it is the
        per-head form, the graph a small C runtime implements."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return self._per_head(x, source, visible)
        G, P, D = source.shape
        q = self.query(x) * self.scale  # (G, Q, D)
        k, v = self.key_value(source).split(D, dim=2)  # (G, P, D) each
        scores = (q.unsqueeze(2) * k.unsqueeze(1)) @ self.head_indicator  # (G, Q, P, D) -> (G, Q, P, nh)
        if visible is not None:
            scores = scores.masked_fill_(~visible.view(G, 1, P, 1), HIDDEN_KEY_SCORE)  # (G, Q, P, nh)
        weights = softmax(scores, dim=2) @ self.head_indicator.T  # (G, Q, P, nh) -> (G, Q, P, D)
        return self.proj((weights * v.unsqueeze(1)).sum(dim=2))  # (G, Q, D)

    def _per_head(self, x: Tensor, source: Tensor, visible: Tensor | None) -> Tensor:
        """`forward` as per-head matrix products (explicit matmul-softmax-matmul: with a handful of tokens
        torch's fused CPU attention kernel spends ~10x longer in per-group setup than in arithmetic)."""
        G, Q, D = x.shape
        P = source.shape[1]
        head_size = D // self.heads
        q = self.query(x).view(G, Q, self.heads, head_size).transpose(1, 2)  # (G, nh, Q, hs)
        k, v = self.key_value(source).split(D, dim=2)
        k = k.view(G, P, self.heads, head_size).transpose(1, 2)  # (G, nh, P, hs)
        v = v.view(G, P, self.heads, head_size).transpose(1, 2)  # (G, nh, P, hs)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (G, nh, Q, P)
        if visible is not None:
            scores = scores.masked_fill(~visible.view(G, 1, 1, P), HIDDEN_KEY_SCORE)  # (G, nh, Q, P)
        y = softmax(scores, dim=-1) @ v  # (G, nh, Q, hs)
        return self.proj(y.transpose(1, 2).reshape(G, Q, D))  # (G, Q, D)


def softmax(scores: Tensor, dim: int) -> Tensor:
    """Softmax over axis `dim`. In eager mode written out (max, exp, sum): on CPU rows of 2-20 keys that
    is ~5x faster than torch.softmax; traced or exported it stays the single Softmax operation."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return torch.softmax(scores, dim=dim)
    # softmax is shift-invariant, so the subtracted max needs no gradient
    weights = (scores - scores.amax(dim=dim, keepdim=True).detach()).exp()
    return weights / weights.sum(dim=dim, keepdim=True)


class MLP(nn.Module):
    """Position-wise Linear -> GELU (tanh approximation) -> Linear."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, ratio * width)
        self.proj = nn.Linear(ratio * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))
