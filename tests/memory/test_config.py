"""PolicyConfig: presets, overrides, JSON round trip, clear errors, and the drone parameter budget."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import memory
from memory.config import PolicyConfig

DRONE_PARAMETER_BUDGET = 16_000


def parameter_count(policy: memory.SwarmPolicy) -> int:
    return sum(p.numel() for p in policy.parameters())


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
@pytest.mark.parametrize("obs_shape", [(3, 5, 5), (3, 11, 11), (4, 11, 11), (2, 7, 7)])
def test_drone_preset_fits_the_microcontroller_budget(name: str, obs_shape: tuple[int, int, int]) -> None:
    policy = memory.make_policy(name, obs_shape, preset="drone")
    assert parameter_count(policy) <= DRONE_PARAMETER_BUDGET


def test_presets_set_the_paper_sizes() -> None:
    bottleneck = memory.make_policy("srmt", (3, 5, 5), preset="bottleneck").config
    lmapf = PolicyConfig.from_dict(memory.make_policy("empty", (3, 11, 11), preset="lmapf").config.to_dict())
    assert (
        bottleneck.width,
        bottleneck.heads,
        bottleneck.filters,
        bottleneck.res_blocks,
        bottleneck.history,
    ) == (16, 4, 8, 1, 8)
    assert (lmapf.width, lmapf.heads, lmapf.filters, lmapf.res_blocks) == (512, 8, 64, 8)


@given(
    name=st.sampled_from(memory.POLICY_NAMES),
    scope=st.sampled_from(["global", "local"]),
    heads=st.sampled_from([1, 2, 4]),
    per_head=st.integers(1, 8),
    history=st.integers(0, 6),
    filters=st.integers(1, 6),
    res_blocks=st.integers(0, 2),
    side=st.sampled_from([3, 5, 7]),
)
def test_config_round_trips_through_json(
    name: str, scope: str, heads: int, per_head: int, history: int, filters: int, res_blocks: int, side: int
) -> None:
    policy = memory.make_policy(
        name,
        (3, side, side),
        scope=scope,
        heads=heads,
        width=heads * per_head,
        history=history,
        filters=filters,
        res_blocks=res_blocks,
    )
    saved = json.loads(json.dumps(policy.config.to_dict()))
    assert PolicyConfig.from_dict(saved) == policy.config
    rebuilt = memory.policy_from_config(saved)
    assert rebuilt.config == policy.config
    rebuilt.load_state_dict(policy.state_dict())  # same modules, same shapes


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: memory.make_policy("srmtt", (3, 5, 5)),
            "srmt, rmt, attention, gru, empty, neighbour_attention",
        ),
        (lambda: memory.make_policy("srmt", (3, 5, 5), depth=3), "valid: width, heads, layers"),
        (lambda: memory.make_policy("srmt", (3, 5, 5), preset="huge"), "bottleneck, lmapf, drone"),
        (lambda: memory.make_policy("srmt", (3, 5, 5), scope="near"), "global, local"),
        (lambda: memory.make_policy("srmt", (3, 5, 5), width=18), "multiple of heads"),
        (lambda: memory.make_policy("srmt", (3, 5), width=16), "obs_shape"),
        (lambda: memory.make_policy("srmt", (3, 5, 5), history=-1), "history -1"),
        (lambda: memory.policy_from_config({"name": "gru", "obs_shape": [3, 5, 5], "colour": 1}), "colour"),
    ],
)
def test_bad_configs_raise_a_value_error_naming_what_is_valid(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_same_seed_same_weights_and_the_global_rng_is_untouched() -> None:
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = memory.make_policy("srmt", (3, 5, 5), seed=7)
    after = torch.rand(1)
    second = memory.make_policy("srmt", (3, 5, 5), seed=7)
    other = memory.make_policy("srmt", (3, 5, 5), seed=8)
    assert torch.equal(before, after)
    for (name, a), b, c in zip(
        first.state_dict().items(), second.state_dict().values(), other.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
        if a.numel() > 1 and a.abs().sum() > 0 and "ln" not in name:
            assert not torch.equal(a, c), name
