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


def local_pool(messages: Tensor, visible: Tensor, neighbours: Tensor, members: Tensor | None = None) -> Pool:
    """Agent i reads its own message and those of neighbours[e, i] (E, N, K) long, -1 = no neighbour.

    messages (E, N_all, M) and visible (E, N_all) cover every agent of an env; the N agents whose rows are
    built are agents 0..N-1 (N_all = N), or `members` (E, N) long, their indices among the N_all (a
    group of agents trained apart from the rest of its env).
    """
    E, N = neighbours.shape[:2]
    if members is None:
        own = torch.arange(N, device=neighbours.device).view(1, N, 1).expand(E, N, 1)
    else:
        own = members.unsqueeze(-1)  # (E, N, 1)
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


@dataclass(frozen=True)
class Outside:
    """The agents of each env outside the group a step computes, as fixed inputs of that step.

    A group-minibatched update unrolls only the G agents `members` of an env; the messages and critic
    summaries its agents read from the other N_all - G agents of the env are those stored in the rollout
    (no gradient flows into them). Leaves are (E, N_all, ...) at one step:
    members (E, G) long; memory (E, N_all, M): every agent's memory before the step, wiped where it resets;
    encoding (E, N_all, D or 0): the step's encoder outputs (neighbour_attention's messages);
    features (E, N_all, D): the step's core outputs; reset, active (E, N_all) bool.
    """

    members: Tensor
    memory: Tensor
    encoding: Tensor
    features: Tensor
    reset: Tensor
    active: Tensor

    def widen(self, live: Tensor, stored: Tensor) -> Tensor:
        """(E, N_all, X): `stored` with the members' rows replaced by `live` (E, G, X), differentiably."""
        index = self.members.unsqueeze(-1).expand(*self.members.shape, live.shape[-1])  # (E, G, X)
        return stored.scatter(1, index, live)
