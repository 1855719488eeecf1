"""The recurrent state every policy carries between steps.

One layout for every policy kind, so rollout buffers and checkpoints need no per-policy code. Unused parts
have a zero-sized dimension: `attention` has an empty memory, `gru` and `empty` an empty history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PolicyState:
    """Per-agent recurrent state; leading dims are (E, N) for a batched step, (B,) for `agent_step`.

    memory: (..., M) float32. SRMT/RMT: the memory vector an agent writes each step (SRMT shares it with
        the agents in its scope); GRU: the hidden state; M = 0 for the other policies.
    history: (..., h, D) float32: the last h encoder outputs, oldest first, zeros before the episode had
        h steps; h = 0 for policies without history (gru, empty, neighbour_attention).
    Inside a training chunk the tensors keep their autograd history (truncated BPTT); call `detach()` at
    chunk boundaries.
    """

    memory: Tensor
    history: Tensor

    @classmethod
    def zeros(
        cls,
        batch: tuple[int, ...],
        memory_size: int,
        history_length: int,
        width: int,
        device: torch.device | str | None = None,
    ) -> PolicyState:
        """The state before an episode's first step (that step must have its reset mask set)."""
        return cls(
            torch.zeros(*batch, memory_size, device=device),
            torch.zeros(*batch, history_length, width, device=device),
        )

    def map(self, fn: Callable[[Tensor], Tensor]) -> PolicyState:
        """The state with `fn` applied to every tensor (indexing, device moves, ...)."""
        return PolicyState(fn(self.memory), fn(self.history))

    def detach(self) -> PolicyState:
        """The same values, cut from the autograd graph (the start of a new training chunk)."""
        return self.map(Tensor.detach)

    def as_dict(self) -> dict[str, Tensor]:
        """The tensors by field name (for buffers and checkpoints)."""
        return {"memory": self.memory, "history": self.history}

    @classmethod
    def from_dict(cls, tensors: dict[str, Tensor]) -> PolicyState:
        """Inverse of `as_dict`."""
        return cls(memory=tensors["memory"], history=tensors["history"])
