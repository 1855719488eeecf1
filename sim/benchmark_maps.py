"""The POGEMA benchmark's Random map set, regenerated from its published generator.

The POGEMA benchmark (Skrynnik et al., "POGEMA: A Benchmark Platform for Cooperative Multi-Agent
Pathfinding", ICLR 2025) evaluates its Random set on the 128 maps `validation-random-seed-000` ..
`validation-random-seed-127` of `01-random.yaml`. They come from pogema-toolbox's random generator
(Apache-2.0, `pogema_toolbox/generators/random_generator.py`): map seed s draws the width and the height in
17..21 and an obstacle density in [0.1, 0.3) from `numpy.random.default_rng(s)`; a fresh `default_rng(s)`
then draws cells (x, then y) until exactly int(width * height * density) distinct cells are obstacles.
Making the same draws gives the same maps character for character, so a benchmark needs no copy of the
third-party map file: `write_maps_yaml` writes them in the `maps.yaml` format that
`MapSpec(generator="benchmark")` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VALIDATION_SEEDS = range(128)
"""The seeds of the benchmark's validation maps (its training maps use seeds 128..639)."""
SIDE_RANGE = (17, 21)
"""Inclusive bounds of a map's width and height."""
DENSITY_RANGE = (0.1, 0.3)
"""Bounds of a map's obstacle density."""


def random_map(seed: int) -> str:
    """The ASCII map ('.' free, '#' obstacle; rows joined by newlines) of map seed `seed`."""
    sizes = np.random.default_rng(seed)
    width = int(sizes.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1))
    height = int(sizes.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1))
    density = float(sizes.uniform(*DENSITY_RANGE))
    cells = np.random.default_rng(seed)
    grid = np.full((height, width), ".")
    remaining = int(width * height * density)
    while remaining:
        x = cells.integers(0, width)
        y = cells.integers(0, height)
        if grid[y, x] == ".":
            grid[y, x] = "#"
            remaining -= 1
    return "\n".join("".join(row) for row in grid)


def validation_random_maps() -> dict[str, str]:
    """The benchmark's 128 Random validation maps, by name (`validation-random-seed-000`, ...)."""
    return {f"validation-random-seed-{seed:03d}": random_map(seed) for seed in VALIDATION_SEEDS}


def write_maps_yaml(path: str | os.PathLike[str], maps: dict[str, str]) -> Path:
    """Write `maps` (name -> ASCII map) as a POGEMA-benchmark `maps.yaml` (`"name": |-` blocks)."""
    blocks = [
        f'"{name}": |-\n' + "".join(f"  {row}\n" for row in text.split("\n")) for name, text in maps.items()
    ]
    path = Path(path)
    path.write_text("".join(blocks), encoding="utf-8")
    return path
