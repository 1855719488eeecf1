"""One drone's decentralized step as a plain torch module with explicit tensor inputs and outputs.

`AgentStep` wraps `SwarmPolicy.agent_step` for batch 1 and a fixed number K of message slots, so that
`torch.export`, `torch.onnx.export` and the C compiler all see the same function. Parts of the state a policy
does not have (no memory, no history, no messages) are left out of the interface instead of being empty.

    inputs   obs (1, C, F, F); memory (1, M); history (1, h, D); messages (1, K, D); message_mask (1, K) bool;
             reset (1,) bool
    outputs  logits (1, A); new_memory (1, M); new_history (1, h, D)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memory import PolicyState, SwarmPolicy


class AgentStep(nn.Module):
    """forward(**inputs) -> (logits, new_memory?, new_history?) for one agent."""

    def __init__(self, policy: SwarmPolicy, max_neighbours: int) -> None:
        super().__init__()
        self.policy = policy.eval()
        self.max_neighbours = max_neighbours
        config = policy.config
        self.memory_size = policy.memory_size
        self.history_shape = (config.history_length, config.width)
        self.message_source = config.message_source  # "memory", "encoding" or None
        self.message_size = config.width if self.message_source else 0

    def example_inputs(self, generator: torch.Generator | None = None, batch: int = 1) -> dict[str, Tensor]:
        """Random inputs with the interface's names and shapes (binary observation planes)."""
        config = self.policy.config
        inputs = {"obs": (torch.rand(batch, *config.obs_shape, generator=generator) < 0.3).float()}
        if self.memory_size:
            inputs["memory"] = torch.randn(batch, self.memory_size, generator=generator)
        if self.history_shape[0]:
            inputs["history"] = torch.randn(batch, *self.history_shape, generator=generator)
        if self.message_source:
            shape = (batch, self.max_neighbours, self.message_size)
            inputs["messages"] = torch.randn(shape, generator=generator)
            inputs["message_mask"] = torch.rand(batch, self.max_neighbours, generator=generator) < 0.5
        inputs["reset"] = torch.zeros(batch, dtype=torch.bool)
        return inputs

    @property
    def output_names(self) -> list[str]:
        names = ["logits"]
        if self.memory_size:
            names.append("new_memory")
        if self.history_shape[0]:
            names.append("new_history")
        return names

    @property
    def state_names(self) -> list[tuple[str, str]]:
        """(input, output) names of the recurrent state parts, in state-vector order."""
        pairs = [("memory", "new_memory")] if self.memory_size else []
        return pairs + ([("history", "new_history")] if self.history_shape[0] else [])

    def forward(
        self,
        obs: Tensor,
        memory: Tensor | None = None,
        history: Tensor | None = None,
        messages: Tensor | None = None,
        message_mask: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """Arguments in the order of `example_inputs` (the ONNX and C argument order)."""
        batch = obs.shape[0]
        if memory is None:
            memory = obs.new_zeros(batch, 0)
        if history is None:
            history = obs.new_zeros(batch, *self.history_shape)
        logits, state = self.policy.agent_step(
            obs, PolicyState(memory, history), messages, message_mask, reset
        )
        outputs = [logits]
        if self.memory_size:
            outputs.append(state.memory)
        if self.history_shape[0]:
            outputs.append(state.history)
        return tuple(outputs)


class MessageEncoder(nn.Module):
    """forward(obs (1, C, F, F)) -> (message (1, D),): what a neighbour_attention drone broadcasts each step
    (its encoder output of this step's observation); policies whose messages are memories need none."""

    def __init__(self, policy: SwarmPolicy) -> None:
        super().__init__()
        self.policy = policy.eval()

    def forward(self, obs: Tensor) -> tuple[Tensor]:
        return (self.policy.encode(obs),)
