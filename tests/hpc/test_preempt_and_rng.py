"""Preemption flags, SLURM job references and requeue, and exact RNG restore."""

import os
import random
import signal
import stat

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hpc


def test_a_signal_sets_the_flag_and_leaving_restores_the_old_handler():
    before = signal.getsignal(signal.SIGUSR1)
    with hpc.PreemptionHandler() as preemption:
        assert not preemption.requested and not preemption.stop_requested(hpc.Comm())
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.received == signal.SIGTERM
        assert preemption.stop_requested(hpc.Comm())
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.parametrize(("value", "count"), [(None, 0), ("0", 0), ("3", 3)])
def test_restart_count_reads_slurm_restart_count(monkeypatch, value, count):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    if value is not None:
        monkeypatch.setenv("SLURM_RESTART_COUNT", value)
    assert hpc.restart_count() == count


def test_a_malformed_restart_count_is_named(monkeypatch):
    monkeypatch.setenv("SLURM_RESTART_COUNT", "-1")
    with pytest.raises(hpc.HpcError, match="SLURM_RESTART_COUNT='-1'"):
        hpc.restart_count()


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch):
    """An `scontrol` on PATH that records its arguments and fails for job 999."""
    log = tmp_path / "scontrol.log"
    script = tmp_path / "scontrol"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n[ "$2" != 999 ] || {{ echo "Invalid job id" >&2; exit 1; }}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch, log


def test_requeue_outside_slurm_does_nothing(fake_scontrol):
    _, log = fake_scontrol
    assert hpc.requeue_job() is False and not log.exists()


def test_an_array_task_requeues_only_itself(fake_scontrol):
    monkeypatch, log = fake_scontrol
    monkeypatch.setenv("SLURM_JOB_ID", "57")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "50")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert hpc.requeue_job() is True
    assert log.read_text() == "requeue 50_7\n"


def test_a_failed_requeue_says_what_scontrol_said(fake_scontrol):
    monkeypatch, _ = fake_scontrol
    monkeypatch.setenv("SLURM_JOB_ID", "999")
    with pytest.raises(hpc.HpcError, match="scontrol requeue 999 failed: Invalid job id"):
        hpc.requeue_job()


def draw_everything(generators: dict[str, np.random.Generator]) -> list:
    return [
        torch.rand(3).tolist(),
        random.random(),
        random.gauss(0, 1),
        np.random.rand(2).tolist(),
        *[generator.integers(0, 2**62, size=3).tolist() for generator in generators.values()],
    ]


@given(st.integers(0, 2**32 - 1), st.integers(0, 20))
def test_restored_generators_repeat_the_same_draws(seed, warmup):
    generators = {
        "pcg": np.random.default_rng(seed),
        "mt": np.random.Generator(np.random.MT19937(seed)),
        "philox": np.random.Generator(np.random.Philox(seed)),
    }
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    for _ in range(warmup):
        draw_everything(generators)
    random.gauss(0, 1)  # leaves a cached second gaussian in python's state
    tensors, meta = hpc.capture_rng(generators)
    expected = draw_everything(generators)
    hpc.restore_rng(tensors, meta, generators)
    assert draw_everything(generators) == expected


def test_rng_states_survive_a_checkpoint(tmp_path):
    generator = np.random.default_rng(5)
    tensors, meta = hpc.capture_rng({"env": generator})
    hpc.save_checkpoint(tmp_path, 0, {"rng": tensors}, {"rng": meta})
    expected = draw_everything({"env": generator})
    loaded, loaded_meta, _ = hpc.load_latest(tmp_path)
    hpc.restore_rng(loaded["rng"], loaded_meta["rng"], {"env": generator})
    assert draw_everything({"env": generator}) == expected


def test_restoring_a_generator_that_was_not_saved_is_named():
    tensors, meta = hpc.capture_rng({"env": np.random.default_rng(0)})
    with pytest.raises(hpc.HpcError, match=r"numpy generator 'sampler'.*\['env'\]"):
        hpc.restore_rng(tensors, meta, {"sampler": np.random.default_rng(0)})
