"""Allreduce time of the flat float32 gradient buffer (hpc.GradientAverager's one call per minibatch step)
for the policy presets' gradient sizes, and an alpha-beta model of the time per update at scale.

    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/bench_allreduce.py [--repeats 30]

Rank 0 prints a Markdown table: measured mean time per Allreduce on this machine, the fitted latency alpha
and inverse bandwidth beta (least squares over the sizes), and the ring-Allreduce model
2 (R-1) alpha + 2 (R-1)/R n beta for R = 64, 256, 1024 with cluster-class alpha/beta (stated below).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import hpc
import memory

PRESETS = {"bottleneck": (3, 5, 5), "drone": (3, 11, 11), "lmapf": (3, 11, 11)}
# An InfiniBand HDR cluster (assumed): ~2 us MPI latency per message, ~20 GB/s per link.
CLUSTER_ALPHA_S, CLUSTER_BETA_S_PER_BYTE = 2e-6, 1 / 20e9
RANKS = (64, 256, 1024)


def gradient_sizes() -> dict[str, int]:
    """Trainable parameters of the SRMT policy of each preset (the float32 values one Allreduce moves)."""
    return {
        preset: sum(
            p.numel()
            for p in memory.make_policy("srmt", shape, 5, preset=preset).parameters()
            if p.requires_grad
        )
        for preset, shape in PRESETS.items()
    }


def time_allreduce(comm: hpc.Comm, size: int, repeats: int) -> float:
    """Mean seconds of one in-place Allreduce-mean of `size` float32 (after a warm-up call)."""
    flat = torch.ones(size, dtype=torch.float32)
    comm.allreduce_mean_(flat)
    comm.barrier()
    started = time.perf_counter()
    for _ in range(repeats):
        comm.allreduce_mean_(flat)
    comm.barrier()
    return (time.perf_counter() - started) / repeats


def ring_time(ranks: int, size_bytes: int, alpha: float, beta: float) -> float:
    """Ring Allreduce: 2 (R-1) steps, each a message of n/R bytes."""
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * size_bytes * beta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    comm = hpc.get_comm()
    sizes = gradient_sizes()
    measured = {preset: time_allreduce(comm, n, args.repeats) for preset, n in sizes.items()}
    if not comm.is_root:
        return
    # least-squares alpha, beta on this machine from t = 2(R-1)alpha + 2(R-1)/R n beta
    steps = 2 * (comm.size - 1)
    design = np.array([[steps, steps / comm.size * 4 * n] for n in sizes.values()])
    alpha, beta = np.linalg.lstsq(design, np.array(list(measured.values())), rcond=None)[0]
    print(f"ranks {comm.size}; fitted here: alpha {alpha * 1e6:.1f} us, 1/beta {1 / beta / 1e9:.2f} GB/s\n")
    header = " | ".join(f"model R={r} (ms)" for r in RANKS)
    print(f"| preset | parameters | MB | measured R={comm.size} (ms) | {header} |")
    print("|---|---:|---:|---:|" + "---:|" * len(RANKS))
    for preset, n in sizes.items():
        model = " | ".join(
            f"{ring_time(r, 4 * n, CLUSTER_ALPHA_S, CLUSTER_BETA_S_PER_BYTE) * 1e3:.3f}" for r in RANKS
        )
        print(f"| {preset} | {n:,} | {4 * n / 1e6:.2f} | {measured[preset] * 1e3:.3f} | {model} |")


if __name__ == "__main__":
    main()
