"""TrainConfig: one typed home per hyperparameter; overrides from the train block and the command line."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marl.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    parse_assignments,
    resolve_config,
    stored_train_config,
)
from marl.train import TrainingPlan


def test_command_line_wins_over_train_block_over_defaults():
    config = resolve_config({"lr": 0.01, "num_envs": 8}, {"lr": "3e-4"})
    assert config.lr == 3e-4 and config.num_envs == 8
    assert config.gamma == TrainConfig().gamma


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"bottleneck.yaml: train block: unknown key 'learnin'") as info:
        resolve_config({"learnin": 1.0}, {}, "bottleneck.yaml")
    with pytest.raises(ConfigError, match="did you mean 'entropy_coef'"):
        apply_overrides(TrainConfig(), {"entropy_coeff": 0.1})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("lr", "1e-3", 1e-3),
        ("num_envs", "32", 32),
        ("total_agent_steps", "1e6", 1_000_000),
        ("value_norm", "false", False),
        ("target_kl", "none", None),
        ("target_kl", "0.02", 0.02),
        ("lr_schedule", "linear", "linear"),
        ("model", "gru", "gru"),
    ],
)
def test_strings_from_the_command_line_are_coerced(key, text, expected):
    value = getattr(apply_overrides(TrainConfig(), parse_assignments([f"{key}={text}"])), key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_envs": "many"}, "key 'num_envs': expected int, found 'many'"),
        ({"num_envs": 2.5}, "expected int"),
        ({"value_norm": "maybe"}, "expected bool"),
        ({"lr_schedule": "cosine"}, "expected one of constant, linear, kl_adaptive"),
        ({"model": "srmtt"}, "did you mean 'srmt'"),
        ({"num_envs": 0}, r"num_envs 0: expected an integer in \[1, 65536\]"),
        ({"num_envs": "1e9"}, r"num_envs 1000000000: expected an integer in \[1, 65536\]"),
        ({"lr": "nan"}, "lr nan: expected a finite number"),
        ({"entropy_coef": "inf"}, "entropy_coef inf: expected a finite number"),
        ({"max_grad_norm": 0}, "must be positive"),
        ({"seed": -1}, "seed -1"),
        ({"rollout_length": 10, "chunk_length": 4}, "multiple of chunk_length"),
        ({"lr_schedule": "kl_adaptive"}, "needs target_kl"),
        ({"gamma": 1.5}, "must lie in"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        apply_overrides(TrainConfig(), overrides)
    assert "\n" not in str(info.value)


def test_set_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignments(["lr"])


def test_derived_sizes_are_properties():
    config = TrainConfig(num_envs=4, rollout_length=32, chunk_length=8)
    assert config.num_chunks_per_env == 4 and config.num_chunks == 16
    assert TrainConfig(**config.to_dict()) == config


@given(
    total=st.integers(1, 10**9),
    envs=st.integers(1, 512),
    agents=st.integers(1, 64),
    rollout=st.integers(1, 128),
    ranks=st.integers(1, 16),
)
def test_a_plan_rounds_the_total_over_all_ranks_to_the_nearest_whole_update(
    total, envs, agents, rollout, ranks
):
    config = TrainConfig(
        total_agent_steps=total, num_envs=envs, rollout_length=rollout, chunk_length=1, num_minibatches=1
    )
    plan = TrainingPlan.of(config, envs, agents, ranks)
    assert plan.steps_per_update == rollout * envs * agents * ranks  # every rank's steps count
    assert plan.num_updates >= 1 and plan.agent_steps == plan.num_updates * plan.steps_per_update
    if total >= plan.steps_per_update:
        assert abs(plan.agent_steps - total) <= plan.steps_per_update / 2
    else:
        assert plan.num_updates == 1


def test_a_stored_config_lacking_newer_keys_reads_as_the_run_trained():
    """Missing keys take their defaults, except a grouped run's `agent_grouping`: consecutive groups, the
    only kind a config without the key could train with."""
    assert stored_train_config({}) == TrainConfig().to_dict()
    assert TrainConfig().agent_grouping == "spatial"
    assert stored_train_config({"scope": "local"})["agent_grouping"] == "spatial"
    assert stored_train_config({"scope": "local", "agent_groups": 5})["agent_grouping"] == "consecutive"
    stored = {"scope": "local", "agent_groups": 5, "agent_grouping": "spatial"}
    assert stored_train_config(stored)["agent_grouping"] == "spatial"
