"""TrainConfig: one typed home per hyperparameter; overrides from the train block and the command line."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from marl.config import (
    POLICY_SIZES,
    ConfigError,
    TrainConfig,
    apply_overrides,
    parse_assignments,
    resolve_config,
    stored_train_config,
)
from marl.learner import build_policy
from marl.train import TrainingPlan
from memory.config import PRESETS, PolicyConfig


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
        ({"width": 30}, "width 30 must be a multiple of heads 4"),
        ({"filters": 0}, r"filters 0: expected an int in \[1, 1024\]"),
        ({"preset": "huge"}, "preset 'huge': expected one of bottleneck, lmapf, drone"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        apply_overrides(TrainConfig(), overrides)
    assert "\n" not in str(info.value)


@given(
    preset=st.sampled_from(sorted(PRESETS)),
    sizes=st.fixed_dictionaries(
        {},
        optional={
            "width": st.sampled_from([8, 16, 24]),
            "heads": st.sampled_from([1, 2, 4, 8]),
            "history": st.integers(0, 4),
            "filters": st.integers(1, 12),
            "res_blocks": st.integers(0, 2),
            "mlp_ratio": st.integers(1, 3),
        },
    ),
)
def test_the_policy_takes_the_sizes_set_and_the_preset_for_the_rest(preset, sizes):
    """`--set width=64` reaches the trained policy; an unset size is the preset's, as before."""
    width, heads = sizes.get("width", PRESETS[preset]["width"]), sizes.get("heads", PRESETS[preset]["heads"])
    if width % heads:
        with pytest.raises(ConfigError, match=f"width {width} must be a multiple of heads {heads}"):
            TrainConfig(preset=preset, **sizes)
        return
    config = apply_overrides(TrainConfig(preset=preset), {key: str(value) for key, value in sizes.items()})
    assert config.policy_sizes == sizes
    built = build_policy(config, (3, 5, 5), 5, torch.device("cpu")).config
    unset = PolicyConfig(name="srmt", obs_shape=(3, 5, 5))  # sizes no preset names keep these defaults
    for key in POLICY_SIZES:
        assert getattr(built, key) == sizes.get(key, PRESETS[preset].get(key, getattr(unset, key)))


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
