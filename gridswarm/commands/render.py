"""`gridswarm render STORE ID --out episode.gif|.mp4|.html|.png|.svg`: draw a stored episode."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gridswarm.arguments import integer, number

USER_ERRORS = ("sim.episode_format.EpisodeStoreError", "sim.render.RenderError")
FORMATS = (".gif", ".mp4", ".html", ".png", ".svg")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="draw a stored episode as a GIF, mp4, HTML player, or PNG/SVG frames",
        description="The output's suffix picks the format. .png and .svg write one frame per step into "
        "a directory named like OUT without its suffix.",
    )
    parser.add_argument("store", help="path of the episode store")
    parser.add_argument("id", help="episode id, WRITER/INDEX or INDEX")
    parser.add_argument("--out", required=True, type=Path, help="output file: " + ", ".join(FORMATS))
    parser.add_argument(
        "--cell", type=integer(4, 64), default=12, help="pixels per grid cell, 4-64 (raster formats)"
    )
    parser.add_argument(
        "--fps", type=number(0, 1000, low_open=True), default=8.0, help="steps per second (animations)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sim import episodes, render
    from sim.render import RenderError

    suffix = args.out.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(
            f"--out {args.out}: unknown format '{suffix}', expected one of {', '.join(FORMATS)}"
        )
    episode = episodes.open(args.store)[args.id]
    arrays = (episode.obstacles, episode.positions, episode.goals, episode.active)
    if suffix == ".gif":
        written = render.save_gif(args.out, *arrays, cell=args.cell, fps=args.fps)
    elif suffix == ".mp4":
        written = render.save_mp4(args.out, *arrays, cell=args.cell, fps=args.fps)
    elif suffix == ".html":
        title = f"{episode.info.scenario_name}: episode {episode.id}"
        written = render.save_html(args.out, *arrays, title=title, fps=args.fps)
    elif suffix == ".png":
        written = render.save_png_frames(args.out.with_suffix(""), *arrays, cell=args.cell)[0].parent
    else:
        written = render.save_svg_frames(args.out.with_suffix(""), *arrays, cell=args.cell)[0].parent
    print(f"wrote {written} ({episode.info.steps} steps, {episode.info.agents} agents)")
    return 0
