"""Checkpoints: exact round trip, retention, damage detection, refusal of pickled code, kill -9 safety."""

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hpc
from hpc.checkpoint import MAGIC, SCHEMA_VERSION


def model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_model_optimizer_and_metadata_exactly(tmp_path):
    model, optimizer = model_and_optimizer()
    meta = {"counters": {"update": 7, "agent_steps": 123_456}, "config": {"lr": 1e-3, "model": "srmt"}}
    tensors = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "value_mean": torch.tensor(2.5),
    }
    path = hpc.save_checkpoint(tmp_path, 42, tensors, meta)

    loaded, loaded_meta, loaded_path = hpc.load_latest(tmp_path)
    assert loaded_path == path == hpc.checkpoint_path(tmp_path, 42)
    assert loaded_meta == {**meta, "step": 42, "schema_version": SCHEMA_VERSION}
    restored, restored_optimizer = model_and_optimizer()
    restored.load_state_dict(loaded["model"])
    restored_optimizer.load_state_dict(loaded["optimizer"])
    assert hpc.params_hash(restored) == hpc.params_hash(model)
    assert torch.equal(
        restored_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert loaded["value_mean"].item() == 2.5


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=12, unique=True), st.integers(1, 4))
def test_only_the_newest_k_checkpoints_are_kept(tmp_path_factory, steps, keep):
    directory = tmp_path_factory.mktemp("keep")
    for step in steps:
        hpc.save_checkpoint(directory, step, {"step": torch.tensor(step)}, {}, keep=keep)
    kept = [step for step, _ in hpc.list_checkpoints(directory)]
    # Retention is by step, not by write order: a resumed run may rewrite an older step.
    assert kept == sorted(steps)[-keep:] if len(steps) >= keep else sorted(steps)
    assert hpc.load_latest(directory)[1]["step"] == max(steps)


def write_three(directory) -> list:
    return [
        hpc.save_checkpoint(directory, step, {"w": torch.full((100,), float(step))}, {}) for step in (1, 2, 3)
    ]


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def flip_a_payload_bit(path) -> None:
    data = bytearray(path.read_bytes())
    data[-50] ^= 0x01
    path.write_bytes(bytes(data))


def garble_the_header(path) -> None:
    path.write_bytes(b"garbage\n" + path.read_bytes())


@pytest.mark.parametrize("damage", [truncate, flip_a_payload_bit, garble_the_header])
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path, capsys, damage):
    paths = write_three(tmp_path)
    damage(paths[-1])
    with pytest.raises(hpc.CheckpointError, match=paths[-1].name):
        hpc.load_checkpoint(paths[-1])
    tensors, meta, path = hpc.load_latest(tmp_path)
    assert path == paths[1] and meta["step"] == 2 and torch.equal(tensors["w"], torch.full((100,), 2.0))
    assert f"skipping checkpoint: {paths[-1]}" in capsys.readouterr().err


def test_no_loadable_checkpoint_is_an_error_that_says_why(tmp_path):
    with pytest.raises(hpc.NoCheckpointError, match="no checkpoint files"):
        hpc.load_latest(tmp_path / "absent")
    for path in write_three(tmp_path):
        truncate(path)
    with pytest.raises(hpc.NoCheckpointError, match="3 damaged checkpoint"):
        hpc.load_latest(tmp_path)


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_with_a_valid_header_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    hpc.save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, {})
    # An attacker can compute the SHA-256 too: only weights_only loading stands in the way of os.system.
    payload_path = tmp_path / "payload"
    torch.save({"tensors": {"w": RunsAShellCommand(marker)}, "meta_json": "{}"}, payload_path)
    payload = payload_path.read_bytes()
    evil = hpc.checkpoint_path(tmp_path, 2)
    digest = hashlib.sha256(payload).hexdigest().encode()
    evil.write_bytes(b"%s %d\n%d %s\n" % (MAGIC, SCHEMA_VERSION, len(payload), digest) + payload)

    with pytest.raises(hpc.CheckpointError, match="refused to load"):
        hpc.load_checkpoint(evil)
    assert hpc.load_latest(tmp_path)[1]["step"] == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    ("tensors", "meta", "message"),
    [
        ({"model": torch.nn.Linear(2, 2)}, {}, r"tensors\['model'\]: Linear is not a tensor"),
        ({"w": {(1, 2): torch.ones(1)}}, {}, r"key \(1, 2\) must be a str or int"),
        ({}, {"when": object()}, "metadata is not JSON"),
    ],
)
def test_what_weights_only_loading_would_refuse_is_refused_at_save_time(tmp_path, tensors, meta, message):
    with pytest.raises(hpc.CheckpointError, match=message):
        hpc.save_checkpoint(tmp_path, 1, tensors, meta)
    assert list(tmp_path.iterdir()) == []


WRITER = textwrap.dedent(
    """
    import sys, torch, hpc
    directory = sys.argv[1]
    for step in range(10**6):
        # 4 MB per checkpoint: long enough writes that a kill often lands inside one.
        weights = {"w": torch.full((1_000_000,), float(step))}
        hpc.save_checkpoint(directory, step, weights, {"n": step}, keep=2)
        print(step, flush=True)
    """
)


def test_kill_9_at_random_moments_leaves_the_latest_complete_checkpoint_loadable(tmp_path):
    rng = random.Random(1234)
    interrupted_writes = 0
    for attempt in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        first = writer.stdout.readline()  # one checkpoint is complete
        assert first.strip().isdigit(), first
        time.sleep(rng.uniform(0.0, 0.6))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        interrupted_writes += any(entry.name.endswith(".tmp") for entry in tmp_path.iterdir())
        tensors, meta, _ = hpc.load_latest(tmp_path)
        assert meta["n"] == meta["step"] and torch.equal(
            tensors["w"], torch.full((1_000_000,), float(meta["step"]))
        )
        # keep=2, plus one per killed writer that had renamed its newest checkpoint but not yet pruned
        assert len(hpc.list_checkpoints(tmp_path)) <= 2 + (attempt + 1)
    print(f"{interrupted_writes} of 4 kills landed inside a write")
    # The next save removes temporary files that dead writers left behind.
    hpc.save_checkpoint(tmp_path, 10**6, {"w": torch.zeros(1)}, {})
    assert [entry.name for entry in tmp_path.iterdir() if entry.name.endswith(".tmp")] == []


BOUNDED_READER = textwrap.dedent(
    """
    import resource, sys
    import hpc
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a reader that reads it all dies here
    for path in sys.argv[1:]:
        try:
            hpc.load_checkpoint(path)
        except hpc.CheckpointError as error:
            print(str(error).replace(path, "PATH"))
    """
)


def test_a_path_that_is_no_checkpoint_is_refused_before_its_payload_is_read(tmp_path):
    header = b"%s %d\n" % (MAGIC, SCHEMA_VERSION)
    digest = hashlib.sha256(b"").hexdigest().encode()
    zero = tmp_path / "step-000000000001.ckpt"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "step-000000000002.ckpt"
    os.mkfifo(fifo)  # opening a FIFO for reading blocks until a writer comes: never
    sparse = tmp_path / "step-000000000003.ckpt"
    sparse_header = header + b"%d %s\n" % (64 << 30, digest)
    with open(sparse, "wb") as file:  # a valid header, then 64 GiB (sparse: no disk used)
        file.write(sparse_header)
        file.truncate(64 << 30)
    small = tmp_path / "step-000000000004.ckpt"
    small.write_bytes(header + b"%d %s\n" % (1 << 40, digest) + b"x" * 10)  # states 1 TiB, holds 10 bytes
    result = subprocess.run(
        [sys.executable, "-c", BOUNDED_READER, str(zero), str(fifo), str(sparse), str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "PATH: cannot read (expected a regular file, found a device, FIFO or socket)",
        "PATH: cannot read (expected a regular file, found a device, FIFO or socket)",
        f"PATH: truncated ({(64 << 30) - len(sparse_header)} of {64 << 30} payload bytes)",
        f"PATH: truncated (10 of {1 << 40} payload bytes)",
    ]
