"""`gridswarm train`'s final evaluation, `gridswarm eval --record/--in-pogema` and `gridswarm run --record`
end to end: recorded episodes replay with zero mismatches; bad requests are one-line errors."""

import json
from pathlib import Path

import pytest

import sim.episodes
from gridswarm.cli import main

RANDOM = """
name: tiny-random
map: {generator: random, width: 7, height: 7, density: 0.2}
agents: {count: 3}
dynamics: {collision_system: priority, on_target: finish, max_episode_steps: 16}
observation: {radius: 2}
reward: {scheme: directional}
"""


def assert_replays(store_path: Path, episodes: int, policy_fragment: str) -> None:
    store = sim.episodes.open(store_path)
    assert len(store) == episodes and not store.incomplete
    for episode_id in store.ids():
        episode = store[episode_id]
        assert policy_fragment in episode.info.policy
        assert sim.episodes.replay(episode) == []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    scenario = root / "tiny-random.yaml"
    scenario.write_text(RANDOM)
    out = root / "run"
    assert (
        main(
            [
                "train",
                str(scenario),
                "--out",
                str(out),
                "--steps",
                "768",
                "--device",
                "cpu",
                "--set",
                "num_envs=4",
                "--set",
                "rollout_length=16",
                "--set",
                "num_minibatches=2",
                "--set",
                "eval_episodes=3",
            ]
        )
        == 0
    )
    return out


@pytest.mark.slow  # shares one tiny training run (~15-45 s on the shared 2-core box)
def test_training_ends_with_a_recorded_evaluation(run_dir: Path) -> None:
    rows = json.loads((run_dir / "eval.json").read_text())
    assert [row["episodes"] for row in rows] == [3]
    assert_replays(run_dir / "episodes.zarr", 3, "srmt")


@pytest.mark.slow  # shares one tiny training run (~15-45 s on the shared 2-core box)
def test_eval_records_episodes_that_replay(run_dir: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "eval.zarr"
    assert main(["eval", str(run_dir), "--episodes", "4", "--record", str(store), "--device", "cpu"]) == 0
    assert "CSR" in capsys.readouterr().out
    assert_replays(store, 4, str(run_dir))


@pytest.mark.slow  # shares one tiny training run (~15-45 s on the shared 2-core box)
def test_reports_of_different_checkpoints_and_modes_do_not_overwrite_each_other(run_dir: Path) -> None:
    final = sorted((run_dir / "checkpoints").glob("step-*.ckpt"))[-1]
    for target, extra in ((run_dir, []), (final, []), (final, ["--greedy"])):
        assert main(["eval", str(target), "--episodes", "2", "--device", "cpu", *extra]) == 0
    reports = {path.name for path in run_dir.glob("eval-*.json")}
    assert {
        "eval-tiny-random-best.json",
        f"eval-tiny-random-{final.stem}.json",
        f"eval-tiny-random-{final.stem}-greedy.json",
    } <= reports


@pytest.mark.slow  # shares one tiny training run (~15-45 s on the shared 2-core box)
def test_eval_in_pogema_reports_both_engines_and_they_agree(run_dir: Path, capsys) -> None:
    pytest.importorskip("pogema")
    assert main(["eval", str(run_dir), "--episodes", "3", "--in-pogema", "--device", "cpu"]) == 0
    assert "pogema CSR" in capsys.readouterr().out
    (row,) = json.loads((run_dir / "eval-tiny-random-best-pogema.json").read_text())
    assert row["equal_episodes"] == 3 and row["ISR"] == row["pogema ISR"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--in-pogema", "--scenario", "warehouse"], "no POGEMA equivalent"),
        (["--in-pogema", "--record", "x.zarr"], "without --in-pogema"),
    ],
)
def test_eval_refuses_what_it_cannot_do_in_one_line(run_dir: Path, extra, message, capsys) -> None:
    if "warehouse" in extra:
        pytest.importorskip("pogema")
    assert main(["eval", str(run_dir), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_run_records_baseline_episodes_that_replay(tmp_path: Path, capsys) -> None:
    scenario = tmp_path / "tiny-random.yaml"
    scenario.write_text(RANDOM)
    store = tmp_path / "greedy.zarr"
    assert (
        main(["run", str(scenario), "--episodes", "3", "--envs", "2", "--seed", "4", "--record", str(store)])
        == 0
    )
    stored = sim.episodes.open(store)
    assert len(stored) >= 3  # every finished episode, also one that ended alongside the third
    assert_replays(store, len(stored), "greedy")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("not a store")
    assert main(["run", str(scenario), "--record", str(tmp_path / "occupied")]) == 2
    assert "not a GridSwarm episode store" in capsys.readouterr().err
