"""benchmarks/mapf_table.py: LaCAM's plans replay to every goal in the simulator, both rows count arrivals
alike, and the published LaCAM numbers it quotes are the benchmark's raw data."""

import numpy as np
import pytest

from tests.benchmarks.helpers import RESULTS, benchmark_script


@pytest.fixture(scope="module")
def table():
    with benchmark_script("mapf_table") as module:
        yield module


@pytest.fixture(scope="module")
def layouts():
    with benchmark_script("planner_table") as planner_table:
        return planner_table.generated_layouts("random", 3)


def test_lacam_solves_generated_tasks_and_its_plans_replay_to_the_goals(table, layouts):
    row = table.lacam_row(layouts, 8, step_limit=5_000)
    assert row["CSR"] == 1.0  # every plan also replayed in GridEnv with every agent arriving
    assert row["makespan"] <= row["SoC"] <= 8 * row["makespan"]


def test_lacam_star_plans_replay_to_the_goals_too(table, layouts):
    row = table.lacam_row(layouts, 8, step_limit=300, refine=True)
    assert row["CSR"] == 1.0 and row["makespan"] <= row["SoC"] <= 8 * row["makespan"]


def test_a_plan_that_stops_short_of_a_goal_does_not_replay_to_the_goals(table, layouts):
    env = table.one_shot_env(layouts[:1], 8)
    height, width = (int(v) for v in env.map_shapes[0])
    result = table.lacam(env.obstacles[0, :height, :width], env.positions[0], env.goals[0])
    arrivals = table.first_arrivals(result.paths, env.goals[0])
    assert table.replays_to_the_goals(layouts[0], result.paths, arrivals)
    last = int(np.argmax(arrivals))  # the last agent to arrive: it stops one step short
    short = result.paths.copy()
    short[arrivals[last] :, last] = short[arrivals[last] - 1, last]
    assert not table.replays_to_the_goals(layouts[0], short, arrivals)


def test_pibt_counts_arrivals_as_the_plans_do(table, layouts):
    row = table.pibt_row(layouts, 8)
    assert 0.0 < row["CSR"] <= 1.0
    assert row["makespan"] <= row["SoC"] <= 8 * row["makespan"] <= 8 * table.STEPS


def published(lines: list[str], section: str, metric: str) -> dict[int, float]:
    """LaCAM's row of `metric` in `section` of published-results.txt: agents -> value."""
    start = lines.index(f"## {section}")
    header = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(f"{metric} "))
    counts = [int(token) for token in lines[header].split()[1:] if token.isdigit()]
    row = next(line for line in lines[header + 1 :] if line.startswith("LaCAM "))
    return dict(zip(counts, (float(v) for v in row.split()[1 : 1 + len(counts)]), strict=True))


def test_the_quoted_lacam_results_equal_the_benchmarks_raw_data(table):
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS} absent")
    lines = RESULTS.read_text().splitlines()
    assert set(table.PUBLISHED_LACAM) == {"MAPF 01-random", "MAPF 02-mazes"}
    for section, metrics in table.PUBLISHED_LACAM.items():
        for metric, cells in metrics.items():
            assert cells == published(lines, section, metric), (section, metric)
