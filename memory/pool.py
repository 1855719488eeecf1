"""The pool of messages (SRMT memories or neighbour encodings) an agent's cross-attention reads.

A pool row holds the messages of one scope: with global scope one row per env, shared by its N agents;
with local scope one row per agent: its own message first, then its neighbours'. An agent always sees
itself, as in the SRMT paper, so local scope with every agent listed equals global scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memory.layers import Attention


@dataclass(frozen=True)
class Pool:
    """Messages (G, P, M) and which are visible (G, P) bool; `group` consecutive agents share a row."""

    messages: Tensor
    visible: Tensor
    group: int

    def attend(self, attention: Attention, x: Tensor) -> Tensor:
        """Cross-attention of every agent's tokens x (B, L, D) over its row; returns (B, L, D)."""
        B, L, D = x.shape
        rows = x.reshape(-1, self.group * L, D)  # (G, group*L, D)
        return attention(rows, self.messages, self.visible).view(B, L, D)  # (B, L, D)

    def any_visible(self) -> Tensor:
        """(B,) bool: the agent's row has at least one visible message."""
        return self.visible.any(dim=1).repeat_interleave(self.group)

    def mean(self) -> Tensor:
        """(B, M): the mean of the visible messages of each agent's row (zeros if none)."""
        weights = self.visible.to(self.messages.dtype).unsqueeze(-1)  # (G, P, 1)
        total = (self.messages * weights).sum(dim=1)  # (G, M)
        return (total / weights.sum(dim=1).clamp(min=1.0)).repeat_interleave(self.group, dim=0)


def global_pool(messages: Tensor, visible: Tensor) -> Pool:
    """Every agent of an env reads all visible messages of that env: messages (E, N, M), visible (E, N)."""
    return Pool(messages, visible, group=messages.shape[1])


def local_pool(messages: Tensor, visible: Tensor, neighbours: Tensor) -> Pool:
    """Agent i reads its own message and those of neighbours[e, i] (E, N, K) long, -1 = no neighbour."""
    E, N = neighbours.shape[:2]
    own = torch.arange(N, device=neighbours.device).view(1, N, 1).expand(E, N, 1)
    index = torch.cat([own, neighbours], dim=2)  # (E, N, 1+K)
    # self listed as its own neighbour would count twice
    listed = torch.cat([torch.ones_like(own, dtype=torch.bool), (neighbours >= 0) & (neighbours != own)], 2)
    env = torch.arange(E, device=neighbours.device).view(E, 1, 1)
    safe_index = index.clamp(min=0)
    gathered = messages[env, safe_index]  # (E, N, 1+K, M)
    seen = visible[env, safe_index] & listed  # (E, N, 1+K)
    return Pool(gathered.flatten(0, 1), seen.flatten(0, 1), group=1)  # (E*N, 1+K, M), (E*N, 1+K)


def agent_pool(
    own_message: Tensor, own_visible: Tensor, neighbour_messages: Tensor, neighbour_visible: Tensor
) -> Pool:
    """One agent's row as a drone assembles it: own (B, M), (B,); received (B, K, M), (B, K)."""
    messages = torch.cat([own_message.unsqueeze(1), neighbour_messages], dim=1)  # (B, 1+K, M)
    visible = torch.cat([own_visible.unsqueeze(1), neighbour_visible], dim=1)  # (B, 1+K)
    return Pool(messages, visible, group=1)
