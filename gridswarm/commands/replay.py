"""`gridswarm replay STORE [ID] --verify`: re-simulate stored episodes and compare them step by step."""

from __future__ import annotations

import argparse
from typing import Any

from sim import episodes
from sim.episodes import EpisodeStoreError

USER_ERRORS = (EpisodeStoreError,)
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
        help="list every difference (episode, step, agent) and exit 1 if there is any",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = episodes.open(args.store)
    ids = [args.id] if args.id is not None else store.ids()
    differing = 0
    for episode_id in ids:
        episode = store[episode_id]
        mismatches = episodes.replay(episode)
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
    print(f"{len(ids) - differing} of {len(ids)} episodes replay identically")
    return 1 if args.verify and differing else 0
