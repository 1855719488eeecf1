"""The scenario loader: conversion, located one-line errors, variants, and the dump round trip."""

from __future__ import annotations

import dataclasses
import re
import textwrap

import pytest

import scenarios
from scenarios import ScenarioError

BOTTLENECK = """\
name: demo
map:
  generator: bottleneck
  corridor_length: 5
agents:
  count: 2
  placement: rooms
dynamics:
  collision_system: block_both
  max_episode_steps: 512
observation: {radius: 2}
variants:
  key: map.corridor_length
  values: [3, {from: 10, to: 14, step: 2}]
  linked:
    dynamics.max_episode_steps: {scale: 2, offset: 100}
train: {lr: 0.001, nested: {a: [1, 2]}}
"""

ERROR_LINE = re.compile(r"^\S+:\d+: key '[\w.\[\]]+': .+$")


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        scenarios.loads(textwrap.dedent(text), source="s.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_valid_file_converts_every_block():
    scenario = scenarios.loads(BOTTLENECK)
    assert scenario.map.generator == "bottleneck" and scenario.map.corridor_length == 5
    assert scenario.agents.placement == "rooms" and scenario.agents.count == 2
    assert scenario.dynamics.collision_system == "block_both" and scenario.dynamics.max_episode_steps == 512
    assert scenario.observation.radius == 2
    assert scenario.train["nested"] == {"a": [1, 2]}
    assert dict(scenario.eval) == {}


def test_variants_splice_ranges_and_expand_linked_rules_and_lists():
    scenario = scenarios.loads(BOTTLENECK)
    assert scenario.variants.values == (3, 10, 12, 14)
    concrete = scenarios.expand_variants(scenario)
    assert [v.map.corridor_length for v in concrete] == [3, 10, 12, 14]
    assert [v.dynamics.max_episode_steps for v in concrete] == [106, 120, 124, 128]
    widths = scenarios.loads(
        "variants: {key: map.height, values: [4, 5, 6], linked: {map.width: [7, 8, 9]}}\n"
    ).variants.linked["map.width"]
    assert widths == (7, 8, 9)
    assert all(v.variants is None for v in concrete)
    assert scenarios.expand_variants(dataclasses.replace(scenario, variants=None)) == [
        dataclasses.replace(scenario, variants=None)
    ]


def test_dump_round_trips():
    scenario = scenarios.loads(BOTTLENECK)
    assert scenarios.loads(scenarios.dump(scenario)) == scenario


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("map:\n  generator: random\n  widht: 3\n", 3, "map.widht", "did you mean 'map.width'?"),
        ("agents:\n  count: two\n", 2, "agents.count", "expected an integer, found 'two'"),
        ("agents:\n  count: 0\n", 2, "agents.count", "expected an integer >= 1, found 0"),
        ("map: {generator: rando}\n", 1, "map.generator", "did you mean 'random'?"),
        ("observation:\n  radius: 0\n", 2, "observation.radius", "found 0"),
        ("map: {generator: random, density: 1.5}\n", 1, "map.density", "[0, 1]"),
        ("map: {generator: bottleneck, width: 9}\n", 1, "map.width", "not used by generator 'bottleneck'"),
        ("agents: {count: 2, placement: fixed}\n", 1, "agents.placement", "needs 'agents.starts'"),
        (
            "agents: {count: 2, placement: fixed, starts: [[0, 0], [0, 1]], goals: [[1, 1]]}\n",
            1,
            "agents.goals",
            "expected 2 cells",
        ),
        (
            "map: {generator: random, width: 4, height: 4}\n"
            "agents: {count: 1, placement: fixed, starts: [[0, 9]], goals: [[1, 1]]}\n",
            2,
            "agents.starts[0]",
            "inside the 4x4 map",
        ),
        (
            "map: {generator: random, width: 4, height: 4}\nagents: {count: 9}\n",
            2,
            "agents.count",
            "at most 8",
        ),
        ("map:\n  generator: ascii\n  ascii: 'a.@ A..'\n", 3, "map.ascii", "found both"),
        ("map:\n  generator: ascii\n  ascii: 'a.. ...'\n", 3, "map.ascii", "'a' unpaired"),
        ("map:\n  generator: ascii\n  ascii: '.. ...'\n", 3, "map.ascii", "equal length"),
        ("map:\n  generator: ascii\n  ascii: 'aA. ...'\n", 3, "agents.placement", "letters fix"),
        (
            "map:\n  generator: ascii\n  ascii: '@## ##$'\nagents: {count: 2}\n",
            4,
            "agents.count",
            "at most 1",
        ),
        ("map: {generator: movingai}\n", 1, "map", "expected 'map.path'"),
        ("map: {generator: movingai, path: nowhere.map}\n", 1, "map.path", "existing file"),
        (
            "map: {generator: bottleneck}\nagents: {count: 40, placement: rooms}\n",
            2,
            "agents.count",
            "at most 36",
        ),
        ("agents: {placement: rooms}\n", 1, "agents.placement", "needs generator 'bottleneck'"),
        (
            "map: {generator: bottleneck}\nagents: {placement: rooms}\ndynamics: {on_target: restart}\n",
            3,
            "dynamics.on_target",
            "found 'restart'",
        ),
        ("agents: {scen: a.scen}\n", 1, "agents.scen", "used only with placement 'scen'"),
        ("observation: {channels: [goal, goal]}\n", 1, "observation.channels", "without repeats"),
        ("observation: {channels: [goal, gaol]}\n", 1, "observation.channels[1]", "did you mean 'goal'?"),
        ("seed: -3\n", 1, "seed", "found -3"),
        ("train: [1]\n", 1, "train", "expected a mapping"),
        ("variants: {key: map.nothing, values: [1]}\n", 1, "variants.key", "dotted key"),
        ("variants: {key: map.density, values: []}\n", 1, "variants.values", "non-empty list"),
        ("variants:\n  key: map.width\n  values: [4, 1]\n", 3, "map.width", "[2, 16384]"),
        (
            "variants:\n  key: map.width\n  values: [4, 5]\n  linked: {map.height: [4]}\n",
            4,
            "variants.linked.map.height",
            "expected 2 values",
        ),
    ],
)
def test_bad_input_names_file_line_key_and_expectation(text, line, key, fragment):
    message = error_of(text)
    assert message.startswith(f"s.yaml:{line}: key '{key}': "), message
    assert fragment in message, message
    assert ERROR_LINE.match(message)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("map: [1\n", "invalid YAML"),
        ("", "empty document"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("a: 1\na: 2\n", "'a' twice"),
        ("x: &a [*a]\n", "recursive alias"),
        ("? [1]\n: 2\n", "text keys"),
    ],
)
def test_malformed_documents_are_scenario_errors(text, fragment):
    with pytest.raises(ScenarioError, match=re.escape(fragment)):
        scenarios.loads(text, source="s.yaml")


def test_unknown_name_suggests_a_builtin(tmp_path):
    with pytest.raises(ScenarioError, match="did you mean 'bottleneck'"):
        scenarios.load("botleneck")
    with pytest.raises(ScenarioError, match="no such file"):
        scenarios.load(tmp_path / "missing.yaml")


def test_relative_paths_resolve_against_the_scenario_folder(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "a.map").write_text("type octile\nheight 2\nwidth 2\nmap\n..\n..\n")
    (tmp_path / "s.yaml").write_text("map: {generator: movingai, path: maps/a.map}\n")
    scenario = scenarios.load(tmp_path / "s.yaml")
    assert scenario.map.path == str(tmp_path / "maps" / "a.map")
    assert scenario.name == "s" and scenario.source == str(tmp_path / "s.yaml")


def test_a_scenario_object_is_returned_as_is():
    scenario = scenarios.Scenario(name="x")
    assert scenarios.load(scenario) is scenario
