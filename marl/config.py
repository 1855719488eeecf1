"""Every training hyperparameter, in one typed and documented place.

`TrainConfig` (MAPPO) and `ImitationConfig` (learning from an expert, `marl.imitation`) are frozen
dataclasses. Their values come, in increasing priority, from the defaults below, the scenario's `train:`
block (an `imitation:` block inside it for ImitationConfig), and the command line (`--set key=value` or
explicit flags); `resolve_config` and `resolve_imitation_config` apply both layers and reject unknown keys
with the closest valid one. The two configs have no field name in common, so one `--set` list can address
both. Derived sizes are properties, never fields filled in later.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from coercion import CoercionError, coerce, field_hints
from marl.threads import TORCH_THREADS
from memory.config import POLICY_NAMES
from memory.config import SIZE_FIELDS as POLICY_SIZES
from memory.config import resolve_config as resolve_policy_config

LrSchedule = Literal["constant", "linear", "kl_adaptive"]
Device = Literal["auto", "cpu", "cuda"]
AgentGrouping = Literal["spatial", "consecutive"]


class ConfigError(ValueError):
    """A training setting the user gave is unknown or has a value of the wrong kind (one-line message)."""


@dataclass(frozen=True)
class TrainConfig:
    """MAPPO hyperparameters and run settings (defaults: a 2-core CPU run on the bottleneck scenario)."""

    model: str = "srmt"
    """policy architecture: one of srmt, rmt, attention, gru, empty, neighbour_attention"""
    preset: str = "bottleneck"
    """size preset of the policy (memory.make_policy's `preset`: bottleneck, lmapf, drone)"""
    width: int | None = None
    """D of the policy: encoder output, token, memory and message width (None: the preset's)"""
    heads: int | None = None
    """attention heads; width must be a multiple (None: the preset's)"""
    layers: int | None = None
    """transformer blocks of the attention cores (None: the preset's)"""
    history: int | None = None
    """past encoder outputs in each agent's token sequence (None: the preset's)"""
    filters: int | None = None
    """channels of the ResNet encoder (None: the preset's)"""
    res_blocks: int | None = None
    """residual blocks of the ResNet encoder (None: the preset's)"""
    mlp_ratio: int | None = None
    """hidden width of the transformer MLP as a multiple of width (None: the preset's)"""
    scope: Literal["global", "local"] = "global"
    """memory scope of SRMT-like policies: all agents of the env, or the simulator's neighbour lists"""
    total_agent_steps: int = 2_000_000
    """training length in agent-steps (one agent acting once), as Sample Factory counts env steps"""
    num_envs: int = 64
    """environments simulated side by side (all agents of all envs share one batched forward pass)"""
    rollout_length: int = 64
    """steps per environment collected before each update"""
    chunk_length: int = 8
    """length of the recurrent training chunks: gradients flow through memory within a chunk"""
    epochs: int = 2
    """passes over each rollout in the update"""
    num_minibatches: int = 4
    """minibatches per epoch; a minibatch is a set of (chunk, env, agent group) units (marl.minibatch)"""
    agent_groups: int = 1
    """groups each env's agents are split into for the update (local scope only): a unit holds one chunk
    of one group; what its agents read of the other groups is the rollout's stored messages (no gradient
    into them; marl/minibatch.py says exactly what this drops). 1: a unit holds all agents of its env"""
    agent_grouping: AgentGrouping = "spatial"
    """how agent groups are cut (agent_groups > 1): spatial (agents near each other at each chunk's start,
    so few neighbour links cross groups) or consecutive (agent indices)"""
    lr: float = 1e-3
    """Adam learning rate (the starting value for the linear and kl_adaptive schedules)"""
    lr_schedule: LrSchedule = "constant"
    """constant; linear decay to zero over the run; or kl_adaptive (Sample Factory: /1.5 or *1.5 per
    minibatch when the KL leaves [target_kl/2, 2*target_kl])"""
    adam_eps: float = 1e-5
    """Adam epsilon"""
    gamma: float = 0.9716
    """discount factor (SRMT bottleneck value)"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip: float = 0.2
    """PPO clip range of the probability ratio"""
    value_clip: float | None = 0.2
    """clip range of the value change (in normalized units when value_norm is on); None: unclipped"""
    huber_delta: float | None = None
    """Huber loss threshold for the value loss; None: squared error"""
    value_norm: bool = True
    """normalize value targets with running statistics (MAPPO's ValueNorm)"""
    entropy_coef: float = 0.01
    """weight of the entropy bonus"""
    value_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 4.0
    """gradient-norm clip"""
    target_kl: float | None = None
    """stop the epoch loop early when the approximate KL exceeds this (also the kl_adaptive target)"""
    normalize_advantages: bool = True
    """normalize advantages over the active steps of each minibatch"""
    seed: int = 0
    """seed of the environments, the policy initialization and the minibatch shuffling"""
    device: Device = "auto"
    """where the policy runs (the simulator always runs on the CPU); auto: cuda when available"""
    torch_threads: int = TORCH_THREADS
    """torch intra-op threads on the CPU (1: the simulator's numba threads need the other cores)"""
    log_every: int = 1
    """updates between metric lines"""
    checkpoint_every: int = 20
    """updates between checkpoints (one is also written at the end)"""
    eval_episodes: int = 20
    """episodes per scenario variant in the final evaluation (0: none)"""
    best_metric: str = "CSR"
    """the episode metric (higher is better) that selects the best checkpoint"""
    critic_warmup_updates: int = 0
    """updates at the start in which only the value head learns (the actor and the shared encoder and core
    stay fixed): fine-tuning a policy whose actor was trained without a critic (`--init`, imitation)"""

    def __post_init__(self) -> None:
        for name, high in UPPER_BOUNDS.items():
            value = getattr(self, name)
            if not 1 <= value <= high:
                raise ConfigError(f"{name} {value}: expected an integer in [1, {high}]")
        if not 0 <= self.seed < 2**63 or not 0 <= self.eval_episodes <= 1 << 16:
            raise ConfigError(
                f"seed {self.seed} and eval_episodes {self.eval_episodes}: expected [0, 2**63) and [0, 65536]"
            )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field.name} {value}: expected a finite number")
        if self.model not in POLICY_NAMES:
            raise ConfigError(
                f"model {self.model!r}: expected one of {', '.join(POLICY_NAMES)}"
                f"{_did_you_mean(self.model, POLICY_NAMES)}"
            )
        try:  # the policy's sizes are checked here, before any environment or layer is built
            resolve_policy_config(self.model, (1, 1, 1), 5, self.preset, self.scope, self.policy_sizes)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.rollout_length % self.chunk_length:
            raise ConfigError(
                f"rollout_length {self.rollout_length} must be a multiple of chunk_length {self.chunk_length}"
            )
        if self.num_chunks < self.num_minibatches:
            raise ConfigError(
                f"num_minibatches {self.num_minibatches} exceeds the {self.num_chunks}"
                " (chunk, env, agent group) units of a rollout"
            )
        if self.agent_groups > 1 and self.scope != "local":
            raise ConfigError(f"agent_groups {self.agent_groups} needs scope 'local' (--set scope=local)")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"gamma {self.gamma} and gae_lambda {self.gae_lambda} must lie in [0, 1]")
        if self.lr <= 0 or self.clip <= 0 or self.adam_eps <= 0 or self.max_grad_norm <= 0:
            raise ConfigError(
                f"lr {self.lr}, clip {self.clip}, adam_eps {self.adam_eps} and max_grad_norm "
                f"{self.max_grad_norm} must be positive"
            )
        if min(self.entropy_coef, self.value_coef) < 0:
            raise ConfigError(
                f"entropy_coef {self.entropy_coef} and value_coef {self.value_coef} must be >= 0"
            )
        if not 0 <= self.critic_warmup_updates <= 2**31:
            raise ConfigError(
                f"critic_warmup_updates {self.critic_warmup_updates}: expected an integer in [0, 2**31]"
            )
        if self.lr_schedule == "kl_adaptive" and self.target_kl is None:
            raise ConfigError("lr_schedule 'kl_adaptive' needs target_kl (e.g. --set target_kl=0.008)")

    @property
    def policy_sizes(self) -> dict[str, int]:
        """The policy sizes set here, overriding the preset's (memory.make_policy's `overrides`)."""
        return {name: getattr(self, name) for name in POLICY_SIZES if getattr(self, name) is not None}

    @property
    def num_chunks_per_env(self) -> int:
        """Chunks each environment's rollout is cut into."""
        return self.rollout_length // self.chunk_length

    @property
    def num_chunks(self) -> int:
        """(chunk, env, agent group) units per rollout: what minibatches are drawn from."""
        return self.num_chunks_per_env * self.num_envs * self.agent_groups

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML types."""
        return dataclasses.asdict(self)


UPPER_BOUNDS = {
    "total_agent_steps": 2**62,
    "num_envs": 1 << 16,
    "rollout_length": 1 << 16,
    "chunk_length": 1 << 16,
    "epochs": 1000,
    "num_minibatches": 1 << 20,
    "agent_groups": 1 << 20,
    "torch_threads": 1024,
    "log_every": 2**31,
    "checkpoint_every": 2**31,
}
"""Counts must lie in [1, bound] (the simulator checks memory for num_envs on top)."""
IMITATION_BLOCK = "imitation"


@dataclass(frozen=True)
class ImitationConfig:
    """Learning from an expert (`marl.imitation`): expert episodes, behaviour cloning, DAgger, then MAPPO
    fine-tuning with the TrainConfig of the same run (model, chunk_length, seed, ... come from there)."""

    expert: str = "pibt"
    """the expert: a scripted centralized policy of `sim.baselines.POLICIES`, a planner preset of
    `sim.planners` or a baseline (it sees the whole state)"""
    expert_data: str | None = None
    """an episode store of expert play to clone (`gridswarm run ... --record`); None: record
    `expert_episodes` episodes of `expert` into the run directory"""
    expert_episodes: int = 256
    """episodes of expert play recorded when `expert_data` is not given"""
    expert_envs: int = 32
    """environments stepped side by side while recording expert episodes"""
    init: str | None = None
    """start from the weights of this policy (a checkpoint, run directory or pretrained:NAME; e.g. one
    cloned before) instead of a fresh initialization"""
    lanes: int = 16
    """episodes replayed side by side in one cloning batch (the E of the (L, E, N) chunks)"""
    bc_epochs: int = 8
    """passes of behaviour cloning over the expert episodes"""
    bc_lr: float = 1e-3
    """Adam learning rate of cloning and DAgger (cross-entropy on the expert's actions)"""
    dagger_iterations: int = 4
    """DAgger iterations: roll out the learner, let the expert label the visited states, retrain"""
    dagger_episodes: int = 32
    """episodes the learner plays (and the expert labels) per DAgger iteration"""
    dagger_epochs: int = 1
    """passes over the aggregated data after each DAgger iteration"""
    dagger_keep: int = 4
    """DAgger iterations whose episodes stay in the aggregate (with the expert episodes)"""
    dagger_expert_fraction: float = 1.0
    """the share of the expert episodes in each DAgger iteration's training pass (a fresh random subset
    per iteration; 1: all of them, Ross et al.'s aggregate; less keeps an iteration's cost bounded)"""
    beta_start: float = 0.5
    """DAgger mixture: in iteration i an environment follows the expert at a step with probability
    beta_start * beta_decay ** (i - 1), the learner otherwise (Ross et al. 2011)"""
    beta_decay: float = 0.5
    """factor of the mixture probability per DAgger iteration"""
    finetune_agent_steps: int = 0
    """MAPPO fine-tuning from the cloned weights, in agent-steps (0: none)"""
    finetune_lr: float | None = None
    """the learning rate of the fine-tuning (None: the TrainConfig's `lr`, which suits training from
    scratch; a cloned policy keeps more of what it learned with a smaller one)"""

    def __post_init__(self) -> None:
        for name, (low, high) in IMITATION_BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{name} {value}: expected an integer in [{low}, {high}]")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field.name} {value}: expected a finite number")
        if self.bc_lr <= 0 or (self.finetune_lr is not None and self.finetune_lr <= 0):
            raise ConfigError(
                f"bc_lr {self.bc_lr} and finetune_lr {self.finetune_lr}: expected positive numbers"
            )
        if not 0.0 <= self.dagger_expert_fraction <= 1.0:
            raise ConfigError(
                f"dagger_expert_fraction {self.dagger_expert_fraction}: expected a value in [0, 1]"
            )
        if not 0.0 <= self.beta_start <= 1.0 or not 0.0 <= self.beta_decay <= 1.0:
            raise ConfigError(
                f"beta_start {self.beta_start} and beta_decay {self.beta_decay} must lie in [0, 1]"
            )
        if self.dagger_iterations and not self.dagger_episodes:
            raise ConfigError("dagger_episodes 0: DAgger iterations need episodes to label")

    def beta(self, iteration: int) -> float:
        """The mixture probability of DAgger iteration `iteration` (1-based)."""
        return self.beta_start * self.beta_decay ** (iteration - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML types."""
        return dataclasses.asdict(self)


IMITATION_BOUNDS = {
    "expert_episodes": (1, 1 << 24),
    "expert_envs": (1, 1 << 16),
    "lanes": (1, 1 << 16),
    "bc_epochs": (0, 1 << 20),
    "dagger_iterations": (0, 1 << 20),
    "dagger_episodes": (0, 1 << 16),
    "dagger_epochs": (1, 1 << 20),
    "dagger_keep": (1, 1 << 20),
    "finetune_agent_steps": (0, 2**62),
}
"""The counts of an ImitationConfig lie in [low, high]."""


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


FIELD_TYPES: dict[str, Any] = field_hints(TrainConfig)
IMITATION_FIELD_TYPES: dict[str, Any] = field_hints(ImitationConfig)
Config = typing.TypeVar("Config", TrainConfig, ImitationConfig)


def _coerce(key: str, value: Any, annotation: Any, where: str) -> Any:
    """Turn a YAML value or command-line string into the field's type, or raise a one-line ConfigError."""
    try:
        return coerce(value, annotation, lenient=True)
    except CoercionError:
        if isinstance(annotation, types.UnionType):  # `float | None`: name the type besides None
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        if typing.get_origin(annotation) is Literal:
            expected = f"one of {', '.join(map(str, typing.get_args(annotation)))}"
        else:
            expected = getattr(annotation, "__name__", annotation)
        raise ConfigError(f"{where}key {key!r}: expected {expected}, found {value!r}") from None


def apply_overrides(config: Config, overrides: Mapping[str, Any], where: str = "") -> Config:
    """Return `config` (a TrainConfig or ImitationConfig) with `overrides` applied; unknown keys and bad
    values raise a one-line ConfigError.

    `where` prefixes error messages (e.g. the scenario file and "train." for its train block).
    """
    types_ = FIELD_TYPES if isinstance(config, TrainConfig) else IMITATION_FIELD_TYPES
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in types_:
            raise ConfigError(f"{where}unknown key {key!r}{_did_you_mean(key, types_)}")
        changes[key] = _coerce(key, value, types_[key], where)
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError as error:
        raise ConfigError(f"{where}{error}") from None


def stored_train_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A train_config as a run stored it (config.yaml, a checkpoint's meta) with every key it lacks filled
    in as that run trained: the default, except `agent_grouping` of a run with agent groups, which a
    stored config without that key cut as "consecutive" groups. Resuming such a run continues it exactly."""
    completed = {**TrainConfig().to_dict(), **stored}
    if "agent_grouping" not in stored and stored.get("agent_groups", 1) != 1:
        completed["agent_grouping"] = "consecutive"
    return completed


def parse_assignments(assignments: typing.Iterable[str]) -> dict[str, str]:
    """Parse command-line `key=value` strings into a mapping (values stay strings until coerced)."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        parsed[key.strip()] = value.strip()
    return parsed


def resolve_config(
    scenario_train: Mapping[str, Any], command_line: Mapping[str, Any], scenario_source: str | None = None
) -> TrainConfig:
    """Defaults <- the scenario's `train` block (without its `imitation` block) <- the command line."""
    where = f"{scenario_source}: train block: " if scenario_source else "train block: "
    block = {key: value for key, value in scenario_train.items() if key != IMITATION_BLOCK}
    config = apply_overrides(TrainConfig(), block, where)
    return apply_overrides(config, command_line, "")


def resolve_imitation_config(
    scenario_train: Mapping[str, Any], command_line: Mapping[str, Any], scenario_source: str | None = None
) -> ImitationConfig:
    """Defaults <- the `imitation` block of the scenario's `train` block <- the command line."""
    where = f"{scenario_source}: " if scenario_source else ""
    block = scenario_train.get(IMITATION_BLOCK) or {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}train.{IMITATION_BLOCK}: expected a mapping of ImitationConfig keys")
    config = apply_overrides(ImitationConfig(), block, f"{where}train.{IMITATION_BLOCK}: ")
    return apply_overrides(config, command_line, "")


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Command-line overrides split into (TrainConfig keys, ImitationConfig keys); a key of neither is a
    one-line ConfigError naming the closest key of both."""
    train, imitation = {}, {}
    for key, value in overrides.items():
        if key in FIELD_TYPES:
            train[key] = value
        elif key in IMITATION_FIELD_TYPES:
            imitation[key] = value
        else:
            known = [*FIELD_TYPES, *IMITATION_FIELD_TYPES]
            raise ConfigError(f"unknown key {key!r}{_did_you_mean(key, known)}")
    return train, imitation
