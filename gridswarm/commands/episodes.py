"""`gridswarm episodes ls STORE` and `gridswarm episodes show STORE ID`: what an episode store holds."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

USER_ERRORS = ("sim.episode_format.EpisodeStoreError",)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("episodes", help="list or show the episodes of a Zarr episode store")
    actions = parser.add_subparsers(dest="episodes_command", required=True, metavar="ACTION")
    listing = actions.add_parser("ls", help="one row per episode: id, scenario, agents, steps, metrics")
    listing.add_argument("store", help="path of the episode store (a .zarr directory)")
    listing.set_defaults(handler=list_episodes)
    show = actions.add_parser("show", help="everything stored about one episode")
    show.add_argument("store", help="path of the episode store")
    show.add_argument("id", help="episode id, WRITER/INDEX (e.g. 0/12) or INDEX when only one writer has it")
    show.add_argument("--scenario", action="store_true", help="also print the stored scenario YAML")
    show.set_defaults(handler=show_episode)


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """Metrics as `key=value` pairs, floats with 4 significant digits."""
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in metrics.items()
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    )


def list_episodes(args: argparse.Namespace) -> int:
    from sim import episodes

    store = episodes.open(args.store)
    rows = [
        (
            info.id,
            info.scenario_name,
            str(info.agents),
            str(info.steps),
            info.policy or "-",
            format_metrics(info.metrics),
        )
        for info in (episode.info for episode in store.episodes())
    ]
    print(format_table(("episode", "scenario", "agents", "steps", "policy", "metrics"), rows))
    incomplete = store.incomplete
    notes = [f"{len(incomplete)} incomplete"] if incomplete else []
    notes += [f"{len(store.skipped)} unreadable"] if store.skipped else []
    print(f"{len(rows)} episodes" + (f", {' and '.join(notes)} (not listed)" if notes else ""))
    return 0


def show_episode(args: argparse.Namespace) -> int:
    from sim import episodes

    episode = episodes.open(args.store)[args.id]
    info = episode.info
    height, width = episode.obstacles.shape
    returns = episode.rewards.sum(axis=0)
    lines = [
        ("episode", info.id),
        ("scenario", info.scenario_name),
        ("seed", str(info.seed)),
        ("policy", info.policy or "-"),
        ("gridswarm", episode.gridswarm_version),
        ("map", f"{height}x{width}, {int(episode.obstacles.sum())} obstacle cells"),
        ("agents", str(info.agents)),
        ("steps", str(info.steps)),
        (
            "return",
            f"mean {returns.mean():.4g}, min {returns.min(initial=np.inf):.4g}, "
            f"max {returns.max(initial=-np.inf):.4g}"
            if returns.size
            else "-",
        ),
        ("metrics", format_metrics(info.metrics) or "-"),
    ]
    print("\n".join(f"{key:<10} {value}" for key, value in lines))
    if args.scenario:
        print("\n" + episode.scenario_yaml.rstrip())
    return 0
