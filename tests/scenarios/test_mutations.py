"""Fuzzing: a mutated scenario file is valid, or rejected with a one-line ScenarioError; never a crash."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scenarios
from scenarios import ScenarioError
from scenarios.loader import LIBRARY
from sim.maps import build_layout

SOURCES = [(LIBRARY / f"{name}.yaml").read_text() for name in scenarios.builtin_names()] + [
    "map:\n  generator: ascii\n  ascii: |\n    a.#\n    ..A\nagents: {count: 1, placement: fixed}\n",
    "map: {generator: random, width: 6, height: 5}\n"
    "agents: {count: 2, placement: fixed, starts: [[0, 0], [1, 1]], goals: [[2, 2], [3, 3]]}\n",
    "map: {generator: ascii, ascii: '@@.. .#$$ !...'}\nagents: {count: 2}\ntrain: {lr: 0.1}\neval: {}\n",
]
GARBAGE = [
    "-1",
    "0",
    "1e999",
    ".nan",
    "true",
    "~",
    "[1, 2]",
    "{a: 1}",
    "'x'",
    "0.5",
    "99999999999999999999",
    "!!binary aGk=",
    "!!python/object:os.system x",
    "&a 1",
    "*b",
    ":",
    "- x",
    "2001-12-14",
    "[[0, 0]]",
    '"\\u00e9"',
    "restart",
    "map.width",
    "{from: 1, to: 0}",
    "{scale: x}",
    "@",
    "|",
    "'#\\n#'",
]


@st.composite
def mutated(draw) -> str:
    lines = draw(st.sampled_from(SOURCES)).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        kind = draw(st.sampled_from(["delete", "rename", "value", "insert", "duplicate", "indent"]))
        if kind == "delete":
            del lines[index]
        elif kind == "rename" and ":" in line:
            key, _, rest = line.partition(":")
            position = draw(st.integers(0, len(key)))
            lines[index] = key[:position] + draw(st.sampled_from("xe_ .")) + key[position + 1 :] + ":" + rest
        elif kind == "value" and ":" in line:
            lines[index] = line.partition(":")[0] + ": " + draw(st.sampled_from(GARBAGE))
        elif kind == "insert":
            position = draw(st.integers(0, len(line)))
            lines[index] = line[:position] + draw(st.text(min_size=1, max_size=3)) + line[position:]
        elif kind == "duplicate":
            lines.insert(index, line)
        else:
            lines[index] = " " * draw(st.integers(1, 3)) + line
    return "\n".join(lines) + "\n"


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(), seed=st.integers(0, 2**32))
def test_only_scenario_errors_escape(text, seed):
    try:
        scenario = scenarios.loads(text, source="fuzz.yaml", base=LIBRARY)
    except ScenarioError as error:
        message = str(error)
        assert message.startswith("fuzz.yaml:") and "\n" not in message
        return
    assert scenarios.loads(scenarios.dump(scenario), base=LIBRARY) == dataclasses.replace(
        scenario, source="<string>"
    )
    variant = scenarios.expand_variants(scenario)[0]
    shape = (variant.map.height, variant.map.width) if variant.map.generator in ("random", "maze") else (1, 1)
    if np.prod(shape) > 300_000:
        return  # valid, but too large to generate in a unit test
    try:
        layout = build_layout(variant, seed)
    except ScenarioError as error:
        assert "\n" not in str(error)
        return
    assert layout.obstacles.ndim == 2 and layout.obstacles.dtype == np.uint8
