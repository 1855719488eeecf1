"""`gridswarm replay STORE [ID] --verify`: re-simulate stored episodes and compare them step by step."""

from __future__ import annotations

import argparse
from typing import Any

USER_ERRORS = ("sim.episode_format.EpisodeStoreError",)
SHOWN_MISMATCHES = 10


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-simulate stored actions from the stored scenario and seed",
        description="Re-simulate each episode's actions from its stored scenario and seed and compare the "
        "map, positions, goals, active flags, rewards and final metrics.",
    )
    parser.add_argument("store", help="path of the episode store")
    parser.add_argument("id", nargs="?", help="one episode id (default: every episode)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="list every difference (episode, step, agent); exit 1 if there is any or an episode is "
        "unreadable",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sim import episodes
    from sim.episodes import EpisodeStoreError

    store = episodes.open(args.store)
    if args.id is not None:  # one episode asked for by name: an unreadable one is an error
        store[args.id].validate()
    chosen = store.episodes(None if args.id is None else [args.id])
    differing = replayed = 0
    for episode in chosen:
        try:
            mismatches = episodes.replay(episode)
        except EpisodeStoreError as error:
            if args.id is not None:
                raise
            print(f"episode {episode.id}: skipped, {error}")
            store.skipped.append(str(error))
            continue
        replayed += 1
        info = episode.info
        if not mismatches:
            print(f"episode {info.id}: identical ({info.steps} steps, {info.agents} agents)")
            continue
        differing += 1
        print(f"episode {info.id}: {len(mismatches)} differences")
        if args.verify:
            for mismatch in mismatches[:SHOWN_MISMATCHES]:
                print(f"  {mismatch}")
            if len(mismatches) > SHOWN_MISMATCHES:
                print(f"  ... and {len(mismatches) - SHOWN_MISMATCHES} more")
    unreadable = f"; {len(store.skipped)} unreadable, skipped" if store.skipped else ""
    print(f"{replayed - differing} of {replayed} episodes replay identically{unreadable}")
    return 1 if args.verify and (differing or store.skipped) else 0
