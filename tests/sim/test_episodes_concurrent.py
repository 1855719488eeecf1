"""Recorders that share a store keep every episode (each claims a writer group of its own), and readers
skip an episode they cannot read, reporting it with one line, instead of stopping at it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gridswarm.cli import main
from marl.offline import ChunkConfig, ExpertChunks
from sim import episodes
from sim.episodes import EpisodeWriter
from tests.sim.episode_data import SCENARIO, synthetic_episode, write_episode

REPOSITORY = Path(__file__).parents[2]


SMALL = """
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 4}
dynamics: {max_episode_steps: 24}
"""


def test_two_run_commands_recording_into_one_store_keep_every_episode(tmp_path):
    store = tmp_path / "same.zarr"
    (tmp_path / "small.yaml").write_text(SMALL)
    command = [
        sys.executable,
        "-m",
        "gridswarm.cli",
        "run",
        str(tmp_path / "small.yaml"),
        "--policy",
        "random",
    ]
    command += ["--episodes", "20", "--envs", "2"]
    runs = [
        subprocess.Popen([*command, "--seed", str(seed), "--record", str(store)], cwd=REPOSITORY,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    listing = episodes.open(store)
    writers = sorted({info.writer_id for info in listing})
    assert writers == [0, 1] and listing.skipped == []
    for writer in writers:  # each run numbers its own episodes 0, 1, ... (an episode still running at the
        # end is discarded, so a run may finish a few more than it asked for)
        indices = sorted(info.index for info in listing if info.writer_id == writer)
        assert indices == list(range(len(indices))) and len(indices) >= 20
    for episode in listing.episodes():
        assert episode.actions.shape == (episode.info.steps, 4) and episode.obstacles.shape == (8, 8)
    assert main(["replay", str(store), "--verify"]) == 0


WRITER = """
import sys, time
from pathlib import Path
from sim.episodes import EpisodeWriter
from tests.sim.episode_data import SCENARIO, synthetic_episode, write_episode
store, seed, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
with EpisodeWriter(store, scenario=SCENARIO, flush_every=3) as writer:
    for k in range(12):
        print(write_episode(writer, synthetic_episode(100 * seed + k, 5 + k, 3), 100 * seed + k), flush=True)
"""


def test_writers_that_start_together_on_a_new_store_keep_every_episode(tmp_path):
    store, go = tmp_path / "new.zarr", tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(seed), str(go)], cwd=REPOSITORY,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in range(3)
    ]  # fmt: skip
    for writer in writers:
        assert writer.stdout.readline() == "ready\n"
    go.touch()  # all three create the store and claim their groups at the same moment
    written: dict[str, int] = {}
    for seed, writer in enumerate(writers):
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        written |= {episode_id: 100 * seed + k for k, episode_id in enumerate(out.split())}
    listing = episodes.open(store)
    assert sorted(listing.ids()) == sorted(written) and len(written) == 36
    for episode_id, seed in written.items():
        expected = synthetic_episode(seed, 5 + seed % 100, 3)
        np.testing.assert_array_equal(listing[episode_id].positions, expected.positions)


# ---- readers skip what they cannot read -------------------------------------------------------------------


def damage_obstacles_missing(episode: Path) -> None:
    shutil.rmtree(episode / "obstacles")


def damage_steps_disagree(episode: Path) -> None:
    edit_attributes(episode, steps=10**6)


def damage_attributes_not_json(episode: Path) -> None:
    (episode / "zarr.json").write_text("{ not json")


def damage_agents_wrong_type(episode: Path) -> None:
    edit_attributes(episode, agents="three")


def damage_positions_wrong_dtype(episode: Path) -> None:
    metadata = json.loads((episode / "positions" / "zarr.json").read_text())
    metadata["data_type"] = "float64"
    (episode / "positions" / "zarr.json").write_text(json.dumps(metadata))


def damage_not_complete(episode: Path) -> None:
    edit_attributes(episode, complete=False)


def edit_attributes(episode: Path, **changes: object) -> None:
    metadata = json.loads((episode / "zarr.json").read_text())
    metadata["attributes"].update(changes)
    (episode / "zarr.json").write_text(json.dumps(metadata))


DAMAGES = [
    damage_obstacles_missing,
    damage_steps_disagree,
    damage_attributes_not_json,
    damage_agents_wrong_type,
    damage_positions_wrong_dtype,
    damage_not_complete,
]


@pytest.fixture
def store(tmp_path) -> Path:
    """Three recorded episodes, all replayable (synthetic data would not replay)."""
    import scenarios
    from sim.env import GridEnv
    from sim.episodes import Recorder

    path = tmp_path / "store.zarr"
    env = GridEnv(scenarios.loads(SMALL), num_envs=3, seed=0, auto_reset=False)
    with Recorder(env, path, flush_every=4) as recorder:
        recorder.reset()
        rng = np.random.default_rng(0)
        while len(recorder.finished_ids) < 3:
            recorder.step(rng.integers(0, 5, (3, env.num_agents)))
    return path


@pytest.mark.parametrize("damage", DAMAGES)
def test_readers_skip_and_report_a_damaged_episode(store, capsys, damage):
    damage(store / "writer_000" / "episode_000001")
    assert main(["episodes", "ls", str(store)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "2 episodes, 1 unreadable (not listed)"
    assert [line.split()[0] for line in captured.out.splitlines()[1:-1]] == ["0/0", "0/2"]
    (reported,) = captured.err.splitlines()
    assert reported.startswith("gridswarm.episodes: skipping ") and "episode_000001" in reported
    assert main(["replay", str(store), "--verify"]) == 1
    captured = capsys.readouterr()
    assert "2 of 2 episodes replay identically; 1 unreadable, skipped" in captured.out
    assert "Traceback" not in captured.err
    dataset = ExpertChunks([store], ChunkConfig(chunk_length=4))
    assert {episode.info.id for episode in dataset.episodes} == {"0/0", "0/2"}
    skipped = dataset.episodes[0].store.skipped
    assert len(skipped) == 1 and "episode_000001" in skipped[0]
    longest = max(episode.info.steps for episode in dataset.episodes)
    assert len(list(dataset)) == -(-longest // 4)  # the two good episodes replay, side by side


def test_a_writer_entry_that_is_a_file_is_skipped(store, capsys):
    (store / "writer_001").write_text("not a group")
    assert main(["episodes", "ls", str(store)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "3 episodes, 1 unreadable (not listed)"
    assert "writer_001: not a writer group" in captured.err
    # and a new writer still finds a group of its own
    write_episode(EpisodeWriter(store, scenario=SCENARIO), synthetic_episode(0, 3, 2), 0)
    assert "2/0" in episodes.open(store).ids()


def test_asking_for_one_damaged_episode_is_a_one_line_error(store, capsys):
    damage_obstacles_missing(store / "writer_000" / "episode_000001")
    for argv in (
        ["replay", str(store), "0/1"],
        ["render", str(store), "0/1", "--out", str(store.parent / "e.gif")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "episode_000001/obstacles: missing or unreadable" in err
    assert not (store.parent / "e.gif").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("actions", 9, "actions must be in 0..4, got 9"), ("positions", [99, 99], "positions fall outside")],
)
def test_edited_array_values_are_one_line_in_replay_and_render(store, capsys, name, value, expected):
    import zarr

    array = zarr.open_array(store / "writer_000" / "episode_000001" / name, mode="r+")
    array[0, 0] = value
    assert main(["replay", str(store), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "2 of 2 episodes replay identically; 1 unreadable, skipped" in out or (
        name == "positions" and "differences" in out
    )
    if name == "positions":
        assert main(["render", str(store), "0/1", "--out", str(store.parent / "e.gif")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err
    else:
        assert main(["replay", str(store), "0/1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err
