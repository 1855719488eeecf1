"""Scenarios that would exhaust memory or time are one line within seconds, and `scenario check` means the
scenario will run: the checks run before anything of the refused size is built.

Inputs that hung or exhausted memory run in a subprocess with a memory limit and a timeout (`EXHAUSTING`),
so a regression fails the test instead of the machine; the others run in this process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios
from gridswarm.cli import main
from gridswarm.commands.scenario import CHECK_SEEDS, check_variant
from scenarios import AgentsSpec, DynamicsSpec, MapSpec, Scenario, ScenarioError
from sim.env import GridEnv

REPOSITORY = Path(__file__).parents[2]
LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from gridswarm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def gridswarm(*argv: str, cwd: Path, isolated: bool = True) -> tuple[int, str, str]:
    """`gridswarm argv` in `cwd`: in a subprocess limited to 4 GiB of memory and 120 s, or in this one."""
    if not isolated:
        previous = Path.cwd()
        os.chdir(cwd)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
                status = main(list(argv))
        finally:
            os.chdir(previous)
        return status, out.getvalue(), err.getvalue()
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin"},
    )
    return result.returncode, result.stdout, result.stderr


def refused(status: int, out: str, err: str, *expected: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith("gridswarm.hpc: running as a single")]
    assert status == 2 and len(lines) == 1, err[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]


def billion_laughs(levels: int = 9) -> str:
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "train:\n" + "\n".join(lines) + "\n"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


CASES = {
    "alias bomb": (billion_laughs(), "values, found more once YAML aliases are expanded"),
    "alias bomb in a key's value": (
        "map: {generator: random}\nagents:\n  starts: &a [[1, 2], [3, 4]]\n" + billion_laughs(),
        "YAML aliases",
    ),
    "many ranges": (
        "variants:\n  key: map.width\n  values: [" + ", ".join(["{from: 2, to: 16385}"] * 60) + "]\n",
        "at most 10000 variants",
    ),
    "many single values": (
        "variants:\n  key: map.width\n  values: [" + ", ".join(["5"] * 10001) + "]\n",
        "at most 10000 variants",
    ),
    "neighbours": ("observation: {neighbours: 1000000000}\n", "'observation.neighbours'", "[0, 1024]"),
    "neighbour radius": (
        "observation: {neighbours: 4, neighbour_radius: 1.0e+300}\n",
        "'observation.neighbour_radius'",
    ),
    "warehouse": (
        "map: {generator: warehouse, shelf_rows: 1024, shelf_columns: 1024, shelf_length: 1024}\n",
        "key 'map'",
        "found 4097x1049613",
    ),
    "episode steps": ("dynamics: {max_episode_steps: 9223372036854775808}\n", "'dynamics.max_episode_steps'"),
    "name outside runs/": ("name: ../../x\n", "key 'name'"),
    "name with a slash": ("name: a/b\n", "key 'name'"),
    "name with a dot-dot variant part": ("name: '..[map.path=x]'\n", "key 'name'"),
    "tag on a mapping": ("map: !!set {generator: random}\n", "YAML tag 'tag:yaml.org,2002:set' on a mapping"),
    "tag on a list": ("agents: {count: 2, placement: fixed, starts: !!omap [[0, 0], [1, 1]]}\n", "on a list"),
    "custom tag": ("map: !mine {generator: random}\n", "YAML tag '!mine'"),
    "variant over channels": (
        "variants: {key: observation.channels, values: [[obstacles, agents, goal], [obstacles, agents]]}\n",
        "variants.key",
        "observation.channels",
    ),
    "variant over agents": ("variants: {key: agents.count, values: [1, 2]}\n", "variants.key"),
    "variant over placement": (
        "variants: {key: agents.placement, values: [random, rooms]}\n",
        "variants.key",
    ),
    "variant over collisions": (
        "variants: {key: dynamics.collision_system, values: [soft, priority]}\n",
        "variants.key",
    ),
    "linked variant over reward": (
        "variants:\n  key: map.width\n  values: [8, 9]\n  linked: {reward.scheme: [sparse, dense]}\n",
        "variants.linked.reward.scheme",
    ),
    "dense random map": (
        "map: {generator: random, width: 8, height: 8, density: 0.8}\nagents: {count: 4}\n",
        "key 'agents.count'",
        "one connected region per agent",
    ),
    "isolated ascii cells": (
        "map:\n  generator: ascii\n  ascii: |\n    .#.#.\n    #####\n    .#.#.\nagents: {count: 2}\n",
        "expected at most 0 agents",
    ),
}


EXHAUSTING = {"alias bomb", "alias bomb in a key's value", "many ranges", "warehouse", "movingai width 1e12"}
EXHAUSTING |= {"backtracking pattern"}


@pytest.mark.parametrize("case", list(CASES))
def test_scenario_check_refuses_in_one_line(tmp_path, case):
    text, *expected = CASES[case]
    write(tmp_path, "s.yaml", text)
    refused(*gridswarm("scenario", "check", "s.yaml", cwd=tmp_path, isolated=case in EXHAUSTING), *expected)


MAP_FILES = {
    "movingai width 1e12": (
        "big.map",
        "type octile\nheight 1\nwidth 1000000000000\nmap\n.\n",
        "map: {generator: movingai, path: big.map}\n",
        "found height 1 and width 1000000000000",
    ),
    "duplicate start in a .scen": (
        "d.scen",
        "version 1\n0\td.map\t4\t4\t0\t0\t3\t3\t1\n0\td.map\t4\t4\t0\t0\t2\t2\t1\n",
        "map: {generator: movingai, path: d.map}\nagents: {count: 2, placement: scen, scen: d.scen}\n",
        "d.scen:3: expected distinct start cells",
    ),
    "duplicate map names": (
        "maps.yaml",
        "a: |-\n  ....\nb: |-\n  ..\na: |-\n  .\n",
        "map: {generator: benchmark, path: maps.yaml, name: a}\n",
        "maps.yaml:5: expected each map name once",
    ),
    "backtracking pattern": (
        "maps.yaml",
        f"{'a' * 40}b: |-\n  ....\n",
        "map: {generator: benchmark, path: maps.yaml, name: '(a+)+$'}\n",
        "no map name matches the glob '(a+)+$'",
    ),
}


@pytest.mark.parametrize("case", list(MAP_FILES))
def test_map_files_are_checked_before_they_are_built(tmp_path, case):
    name, content, scenario, expected = MAP_FILES[case]
    write(tmp_path, name, content)
    write(tmp_path, "d.map", "type octile\nheight 4\nwidth 4\nmap\n....\n....\n....\n....\n")
    write(tmp_path, "s.yaml", scenario)
    refused(*gridswarm("scenario", "check", "s.yaml", cwd=tmp_path, isolated=case in EXHAUSTING), expected)


def test_too_many_environments_are_refused_before_allocating(tmp_path):
    write(
        tmp_path,
        "s.yaml",
        "map: {generator: random, width: 4096, height: 4096}\nobservation: {radius: 128}\n",
    )
    refused(
        *gridswarm("run", "s.yaml", "--envs", "10000", cwd=tmp_path), "GiB of buffers", "10000 environment"
    )


SECRET = "API_TOKEN=hunter2-very-secret"


@pytest.mark.parametrize(
    "scenario",
    [
        "map: {generator: movingai, path: secret}\n",
        "map: {generator: benchmark, path: secret, name: x}\n",
        "map: {generator: movingai, path: d.map}\nagents: {count: 1, placement: scen, scen: secret}\n",
        None,  # the secret file named as the scenario itself
    ],
)
def test_errors_never_echo_the_text_of_a_file_named_by_mistake(tmp_path, scenario):
    write(tmp_path, "secret", f"{SECRET}\nPATH=/usr/bin\n")
    write(tmp_path, "d.map", "type octile\nheight 4\nwidth 4\nmap\n....\n....\n....\n....\n")
    write(tmp_path, "s.yaml", scenario or "")
    status, _, err = gridswarm(
        "scenario", "check", "s.yaml" if scenario else "secret", cwd=tmp_path, isolated=False
    )
    assert status == 2 and "hunter2" not in err and "API_TOKEN" not in err, err


# ---- check and run agree: a differential test of check's placement against the simulator's -----------------


@st.composite
def small_scenarios(draw: st.DrawFn) -> scenarios.Scenario:
    """Random or ASCII maps of 2-9 cells a side, sometimes too crowded or cut into pieces (built directly:
    the loader's own static checks would refuse some before check and the simulator are compared)."""
    height, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    if draw(st.booleans()):
        spec = MapSpec(width=width, height=height, density=draw(st.floats(0.0, 0.9)))
    else:
        cells = draw(st.lists(st.sampled_from(".#"), min_size=height * width, max_size=height * width))
        rows = ["".join(cells[r * width : (r + 1) * width]) for r in range(height)]
        spec = MapSpec(generator="ascii", ascii="\n".join(rows))
    return Scenario(
        map=spec,
        agents=AgentsSpec(count=draw(st.integers(1, 12))),
        dynamics=DynamicsSpec(max_episode_steps=8),
    )


@settings(max_examples=60, deadline=None)
@given(scenario=small_scenarios(), seed=st.integers(0, 2**32))
def test_what_check_accepts_the_simulator_places_and_what_it_refuses_it_cannot(scenario, seed):
    env = GridEnv(scenario, num_envs=1, auto_reset=False)
    try:
        check_variant(scenario, seed)
    except ScenarioError as refusal:
        assert "agents.count" in str(refusal)
        fits = []
        for offset in range(CHECK_SEEDS):
            try:
                env.reset(episode_seeds=np.array([seed + offset]))
                fits.append(True)
            except ScenarioError:
                fits.append(False)
        assert not all(fits), "check refused a scenario whose every checked episode the simulator places"
        return
    for offset in range(CHECK_SEEDS):  # every seed check built is one the simulator plays
        env.reset(episode_seeds=np.array([seed + offset]))
        env.step(np.zeros((1, scenario.agents.count), dtype=np.int64))
        assert env.active[0].sum() <= scenario.agents.count


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(1, 6), columns=st.integers(1, 6), length=st.integers(1, 12), stations=st.integers(0, 4)
)
def test_the_warehouse_size_check_uses_the_size_the_generator_builds(rows, columns, length, stations):
    from scenarios.checks import map_shape
    from sim.maps import GENERATORS

    spec = MapSpec(
        generator="warehouse",
        shelf_rows=rows,
        shelf_columns=columns,
        shelf_length=length,
        station_columns=stations,
    )
    assert map_shape(spec) == GENERATORS["warehouse"](spec, 0).shape
