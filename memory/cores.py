"""The recurrent cores between the encoder and the heads.

Every core maps (encoding (B, D), memory (B, M), history (B, h, D), reset (B,) bool, pool) to
(features (B, D), new memory (B, M), new history (B, h, D)), B agents flattened. The caller has already
zeroed memory and history where `reset` is set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from memory.config import PolicyConfig
from memory.layers import MLP, Attention
from memory.pool import Pool


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, cross-attention to the message pool (optional), MLP."""

    def __init__(self, config: PolicyConfig, reads_pool: bool) -> None:
        super().__init__()
        width = config.width
        self.ln_1 = nn.LayerNorm(width)
        self.self_attention = Attention(width, config.heads)
        self.ln_cross = nn.LayerNorm(width) if reads_pool else None
        self.cross_attention = Attention(width, config.heads) if reads_pool else None
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, config.mlp_ratio)

    def forward(
        self,
        x: Tensor,
        visible: Tensor | None,
        pool: Pool | None,
        reads: Tensor | None,
        outputs: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """x (B, L, D); visible (B, L) bool keys; reads (B, 1, 1) float: 1 = the agent reads the pool.
        `outputs` picks the R token rows whose outputs are wanted, (B, L, D) -> (B, R, D): only they are
        queried and sent through the rest of the block (every token is still a key). Returns (B, R, D)."""
        x_norm = self.ln_1(x)
        queries, x = (x_norm, x) if outputs is None else (outputs(x_norm), outputs(x))  # (B, R, D)
        x = x + self.self_attention(queries, x_norm, visible)
        if self.cross_attention is not None and pool is not None:
            x = x + reads * pool.attend(self.cross_attention, self.ln_cross(x))
        return x + self.mlp(self.ln_2(x))


class TransformerCore(nn.Module):
    """srmt, rmt, attention and neighbour_attention: one token sequence per agent through the blocks.

    Tokens [memory?, e_{t-h} .. e_{t-1}, e_t] with learned positions and full (non-causal) self-attention.
    srmt reads the pool of memories of the agents in scope, neighbour_attention the pool of their current
    encodings. Features = the last token's output. New memory = memory_head(the memory token's output);
    at a reset the memory token is hidden and no pool is read, and the new memory comes from the current
    token: memory is generated from the episode's first observation (SRMT paper). The last block computes
    only these two outputs (every token is still a key): the others would be discarded.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.has_memory = config.has_memory
        self.history_length = config.history_length
        reads_pool = config.message_source is not None
        tokens = int(self.has_memory) + self.history_length + 1
        self.position = nn.Parameter(torch.zeros(tokens, config.width))
        self.blocks = nn.ModuleList([Block(config, reads_pool) for _ in range(config.layers)])
        self.ln_f = nn.LayerNorm(config.width)
        self.memory_head = nn.Linear(config.width, config.width, bias=False) if self.has_memory else None

    def forward(
        self, encoding: Tensor, memory: Tensor, history: Tensor, reset: Tensor, pool: Pool | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        tokens = [history, encoding.unsqueeze(1)]
        visible = None
        if self.has_memory:
            tokens.insert(0, memory.unsqueeze(1))
            # the memory token is hidden at a reset: there is no memory yet
            others = torch.ones(len(reset), len(self.position) - 1, dtype=torch.bool, device=reset.device)
            visible = torch.cat([~reset.unsqueeze(1), others], dim=1)  # (B, L)
        x = torch.cat(tokens, dim=1) + self.position  # (B, L, D)
        reads = None
        if pool is not None:
            # an SRMT agent at its reset has no memory yet and reads nothing (the paper's first step)
            reads = pool.any_visible() & ~reset if self.has_memory else pool.any_visible()
            reads = reads.to(x.dtype).view(-1, 1, 1)  # (B, 1, 1)
        for block in self.blocks[:-1]:
            x = block(x, visible, pool, reads)
        # the last block computes only the outputs that are read: the memory token's and the current one's
        x = self.ln_f(self.blocks[-1](x, visible, pool, reads, self._read_tokens))  # (B, 1 or 2, D)
        features = x[:, -1]
        new_memory = memory
        if self.memory_head is not None:
            new_memory = self.memory_head(torch.where(reset.unsqueeze(1), x[:, -1], x[:, 0]))
        new_history = history
        if self.history_length:
            new_history = torch.cat([history[:, 1:], encoding.unsqueeze(1)], dim=1)  # (B, h, D)
        return features, new_memory, new_history

    def _read_tokens(self, x: Tensor) -> Tensor:
        """(B, L, D) -> the rows whose outputs the core reads: (B, 2, D) [memory, current] or (B, 1, D).
        Slices and a concatenation (not an index list): the C export implements those."""
        return torch.cat([x[:, :1], x[:, -1:]], dim=1) if self.has_memory else x[:, -1:]


class GRUCore(nn.Module):
    """A GRU cell over the encodings; its hidden state is the memory (zeros at a reset)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.cell = nn.GRUCell(config.width, config.width)

    def forward(
        self, encoding: Tensor, memory: Tensor, history: Tensor, reset: Tensor, pool: Pool | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        hidden = self.cell(encoding, memory)
        return hidden, hidden, history


class EmptyCore(nn.Module):
    """No core: the encoding goes straight to the heads (the SRMT paper's `Empty` baseline)."""

    def forward(
        self, encoding: Tensor, memory: Tensor, history: Tensor, reset: Tensor, pool: Pool | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        return encoding, memory, history


def make_core(config: PolicyConfig) -> nn.Module:
    """The core module of `config.name`."""
    if config.name == "gru":
        return GRUCore(config)
    if config.name == "empty":
        return EmptyCore()
    return TransformerCore(config)
