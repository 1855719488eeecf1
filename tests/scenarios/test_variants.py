"""`scenarios.variants`: which variant each environment of a batch plays, and the variants' labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scenarios
from scenarios import Variants
from scenarios.variants import batchable_variants, variant_blocks, variant_labels


def widths(count: int) -> scenarios.Scenario:
    """`random` with `count` variants of map.width."""
    base = scenarios.load("random")
    return dataclasses.replace(base, variants=Variants(key="map.width", values=tuple(range(8, 8 + count))))


@given(st.integers(1, 40), st.integers(0, 200))
def test_blocks_cover_every_variant_in_order_as_evenly_as_possible(count, extra):
    num_envs = count + extra
    blocks = np.array(variant_blocks(widths(count), num_envs))
    assert len(blocks) == num_envs
    assert (np.diff(blocks) >= 0).all()  # contiguous, in variant order
    sizes = np.bincount(blocks, minlength=count)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    assert (np.diff(sizes) <= 0).all()  # earlier variants take the remainder


@given(st.integers(1, 30), st.integers(1, 30))
def test_variants_times_episodes_give_each_variant_its_episodes(count, episodes):
    blocks = variant_blocks(widths(count), count * episodes)
    assert blocks == tuple(np.repeat(np.arange(count), episodes))


def test_a_scenario_without_variants_is_one_variant_labelled_all():
    plain = scenarios.load("random")
    assert variant_blocks(plain, 3) == (0, 0, 0)
    assert variant_labels(plain) == ["all"]
    assert variant_labels(widths(2)) == ["map.width=8", "map.width=9"]


def test_fewer_environments_than_variants_are_refused():
    with pytest.raises(ValueError, match=r"num_envs 2: need at least one environment per variant \(3 "):
        variant_blocks(widths(3), 2)


def test_variants_built_in_code_that_change_the_agents_are_refused():
    scenario = dataclasses.replace(
        scenarios.load("random"), variants=Variants(key="agents.count", values=(1, 2))
    )
    with pytest.raises(ValueError, match="change the agents block"):
        batchable_variants(scenario)
