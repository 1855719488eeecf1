"""Pictures of episodes: PNG/GIF frames (Pillow), SVG frames, a self-contained HTML player, and mp4.

Inputs are an episode's arrays: obstacles (H, W) uint8 (1 = obstacle), positions (T, N, 2) int (row, col),
goals (T, N, 2) int, optional active (T, N) bool (inactive agents and their goals are not drawn, as pogema
hides finished agents), and optional planned paths (one (L, 2) array per agent, drawn as thin lines).

Raster frames are palette images drawn with numpy: palette index 0 free, 1 obstacle, 2 path, and 3 + i % 253
the colour of agent i. Agents are filled discs, goals hollow squares of the same colour; so an image of
more than 253 agents repeats colours. Pictures need Pillow only; mp4 needs the `imageio-ffmpeg` package.
"""

from __future__ import annotations

import base64
import colorsys
import json
import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from fsio import atomic_path
from optdeps import require

FREE_RGB = (250, 250, 250)
OBSTACLE_RGB = (60, 60, 70)
PATH_RGB = (200, 200, 210)
AGENT_PALETTE_SIZE = 253
_FIRST_AGENT_INDEX = 3


MAX_FRAME_PIXELS = 1 << 26
"""Pixels of one raster frame (8192 x 8192)."""
MAX_EPISODE_PIXELS = 1 << 30
"""Pixels of all raster frames of an episode together (they are held in memory, a byte each)."""


class RenderError(ValueError):
    """The episode cannot be drawn as asked (bad shapes, unknown format, missing encoder)."""


def _check_fps(fps: float) -> float:
    if not 0 < fps <= 1000:  # also refuses NaN
        raise RenderError(f"fps {fps}: expected a number in (0, 1000]")
    return fps


def agent_colours(num_agents: int) -> np.ndarray:
    """(num_agents, 3) uint8 distinct colours: hues a golden angle apart, alternating lightness."""
    index = np.arange(num_agents)
    hues = (index * 0.618033988749895) % 1.0
    values = np.where(index % 2 == 0, 0.85, 0.6)
    rgb = [colorsys.hsv_to_rgb(h, 0.8, v) for h, v in zip(hues, values, strict=True)]
    return (np.array(rgb, dtype=np.float64).reshape(num_agents, 3) * 255).round().astype(np.uint8)


def palette(num_agents: int) -> list[int]:
    """The flat RGB palette of the raster frames (768 entries, Pillow's layout)."""
    colours = agent_colours(min(num_agents, AGENT_PALETTE_SIZE))
    flat = [*FREE_RGB, *OBSTACLE_RGB, *PATH_RGB, *colours.reshape(-1).tolist()]
    return flat + [0] * (768 - len(flat))


def _check_episode(
    obstacles: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray | None
) -> np.ndarray:
    """Validate shapes and return `active` as a (T, N) bool array."""
    if obstacles.ndim != 2:
        raise RenderError(f"obstacles must be (H, W), got shape {obstacles.shape}")
    if positions.ndim != 3 or positions.shape[2] != 2 or goals.shape != positions.shape:
        raise RenderError(
            f"positions and goals must both be (T, N, 2), got {positions.shape} and {goals.shape}"
        )
    if positions.shape[0] == 0:
        raise RenderError("the episode has no steps to draw")
    height, width = obstacles.shape
    for name, cells in (("positions", positions), ("goals", goals)):
        if cells.size and (cells.min() < 0 or cells[..., 0].max() >= height or cells[..., 1].max() >= width):
            raise RenderError(f"{name} fall outside the {height}x{width} map")
    if active is None:
        return np.ones(positions.shape[:2], dtype=bool)
    if active.shape != positions.shape[:2]:
        raise RenderError(f"active must be (T, N) = {positions.shape[:2]}, got {active.shape}")
    return active.astype(bool)


def _disc_mask(cell: int) -> np.ndarray:
    """(cell, cell) bool: a filled disc filling 80% of the cell."""
    centre = (cell - 1) / 2
    yy, xx = np.mgrid[0:cell, 0:cell]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.4 * cell) ** 2


def _ring_mask(cell: int) -> np.ndarray:
    """(cell, cell) bool: a hollow square one pixel inside the cell border."""
    thickness = max(1, cell // 8)
    mask = np.zeros((cell, cell), dtype=bool)
    inner = slice(1, cell - 1)
    mask[inner, inner] = True
    mask[1 + thickness : cell - 1 - thickness, 1 + thickness : cell - 1 - thickness] = False
    return mask


def _stamp(image: np.ndarray, cells: np.ndarray, mask: np.ndarray, values: np.ndarray) -> None:
    """Paint `mask` (c, c) at every cell of `cells` (K, 2) with the palette index in `values` (K,)."""
    cell = mask.shape[0]
    dy, dx = np.nonzero(mask)
    rows = cells[:, 0, None].astype(np.int64) * cell + dy[None, :]  # (K, P)
    cols = cells[:, 1, None].astype(np.int64) * cell + dx[None, :]  # (K, P)
    image[rows, cols] = values[:, None]


class FramePainter:
    """Draws frames of one episode as (H*cell, W*cell) uint8 palette-index images."""

    def __init__(
        self,
        obstacles: np.ndarray,
        num_agents: int,
        cell: int = 12,
        paths: Sequence[np.ndarray] | None = None,
    ) -> None:
        if cell < 4:
            raise RenderError(f"cell must be at least 4 pixels, got {cell}")
        self.cell = cell
        self.agent_index = (_FIRST_AGENT_INDEX + np.arange(num_agents) % AGENT_PALETTE_SIZE).astype(np.uint8)
        self.palette = palette(num_agents)
        ones = np.ones((cell, cell), dtype=np.uint8)
        self.background = np.kron(obstacles.astype(np.uint8), ones)  # 0 free, 1 obstacle
        for path in paths or ():
            path = np.asarray(path).reshape(-1, 2)
            _stamp(self.background, path, _path_mask(cell), np.full(len(path), 2, np.uint8))
        self._disc = _disc_mask(cell)
        self._ring = _ring_mask(cell)

    def paint(self, positions: np.ndarray, goals: np.ndarray, active: np.ndarray) -> np.ndarray:
        """One frame: positions, goals (N, 2), active (N,) -> (H*cell, W*cell) uint8 palette indices."""
        image = self.background.copy()
        shown = np.flatnonzero(active)
        _stamp(image, goals[shown], self._ring, self.agent_index[shown])
        _stamp(image, positions[shown], self._disc, self.agent_index[shown])
        return image

    def image(self, indices: np.ndarray) -> Image.Image:
        picture = Image.fromarray(indices, mode="P")
        picture.putpalette(self.palette)
        return picture


def _path_mask(cell: int) -> np.ndarray:
    """(cell, cell) bool: a small centred square marking a planned path cell."""
    mask = np.zeros((cell, cell), dtype=bool)
    low, high = cell // 2 - max(1, cell // 8), cell // 2 + max(1, cell // 8)
    mask[low:high, low:high] = True
    return mask


def render_frames(
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
    paths: Sequence[np.ndarray] | None = None,
) -> list[Image.Image]:
    """Every step of an episode as a Pillow palette image."""
    active = _check_episode(obstacles, positions, goals, active)
    pixels = obstacles.shape[0] * obstacles.shape[1] * cell * cell
    if pixels > MAX_FRAME_PIXELS or pixels * len(positions) > MAX_EPISODE_PIXELS:
        raise RenderError(
            f"{len(positions)} frames of {obstacles.shape[0] * cell}x{obstacles.shape[1] * cell} pixels "
            f"(cell {cell}) are more than the limits of {MAX_FRAME_PIXELS} pixels per frame and "
            f"{MAX_EPISODE_PIXELS} in all; use a smaller --cell or the .html player"
        )
    painter = FramePainter(obstacles, positions.shape[1], cell, paths)
    return [painter.image(painter.paint(positions[t], goals[t], active[t])) for t in range(len(positions))]


def save_gif(
    path: str | os.PathLike[str],
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
    fps: float = 8.0,
    paths: Sequence[np.ndarray] | None = None,
) -> Path:
    """An animated GIF of the episode, one frame per step, looping, with a step-progress bar below the map
    (`PROGRESS_ROWS` pixels)."""
    _check_fps(fps)
    frames = render_frames(obstacles, positions, goals, active, cell=cell, paths=paths)
    frames = [_with_progress_bar(frame, step, len(frames)) for step, frame in enumerate(frames)]
    target = Path(path)
    _atomic_write(
        target,
        lambda temp: frames[0].save(
            temp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(1000 / fps),
            loop=0,
            optimize=False,
            disposal=1,
        ),
    )
    return target


PROGRESS_ROWS = 3
"""Pixel rows of the GIF's step-progress bar."""


def _with_progress_bar(frame: Image.Image, step: int, num_steps: int) -> Image.Image:
    """`frame` with a progress bar below it, filled to (step + 1) / num_steps in the obstacle colour. The
    bar's head alternates between the obstacle and path colours from step to step, so consecutive frames
    always differ: Pillow's GIF writer merges identical consecutive frames (an episode where nobody moves
    would lose frames)."""
    indices = np.asarray(frame)
    width = indices.shape[1]
    bar = np.zeros((PROGRESS_ROWS, width), dtype=np.uint8)
    filled = max(1, round(width * (step + 1) / num_steps))
    bar[:, :filled] = 1
    bar[:, filled - 1] = 1 + step % 2
    picture = Image.fromarray(np.vstack([indices, bar]), mode="P")
    picture.putpalette(frame.getpalette())
    return picture


def save_png_frames(
    directory: str | os.PathLike[str],
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
    paths: Sequence[np.ndarray] | None = None,
) -> list[Path]:
    """One PNG per step: DIRECTORY/frame_00000.png, ..."""
    frames = render_frames(obstacles, positions, goals, active, cell=cell, paths=paths)
    return _save_frames(
        directory, "png", [lambda temp, frame=frame: frame.save(temp, format="PNG") for frame in frames]
    )


def _save_frames(
    directory: str | os.PathLike[str], suffix: str, writers: Sequence[Callable[[str], object]]
) -> list[Path]:
    """DIRECTORY/frame_<t>.<suffix> for each step t, each written atomically by `writers[t](temp_path)`."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    files = [target / f"frame_{t:05d}.{suffix}" for t in range(len(writers))]
    for file, write in zip(files, writers, strict=True):
        _atomic_write(file, write)
    return files


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def frame_svg(
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
) -> str:
    """One step as an SVG document: `rect.obstacle` per obstacle cell, `rect.goal` (hollow) and
    `circle.agent` (with `data-agent`) per active agent. positions, goals (N, 2); active (N,)."""
    shown = _check_episode(obstacles, positions[None], goals[None], None if active is None else active[None])[
        0
    ]
    height, width = obstacles.shape
    colours = agent_colours(len(positions))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * cell}" height="{height * cell}" '
        f'viewBox="0 0 {width * cell} {height * cell}">',
        f'<rect width="100%" height="100%" fill="{_hex(np.array(FREE_RGB))}"/>',
    ]
    parts += [
        f'<rect class="obstacle" x="{c * cell}" y="{r * cell}" width="{cell}" height="{cell}" '
        f'fill="{_hex(np.array(OBSTACLE_RGB))}"/>'
        for r, c in np.argwhere(obstacles)
    ]
    for i in np.flatnonzero(shown):
        (gr, gc), (r, c), colour = goals[i], positions[i], _hex(colours[i])
        parts.append(
            f'<rect class="goal" data-agent="{i}" x="{gc * cell + 1.5}" y="{gr * cell + 1.5}" '
            f'width="{cell - 3}" height="{cell - 3}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        parts.append(
            f'<circle class="agent" data-agent="{i}" cx="{(c + 0.5) * cell}" cy="{(r + 0.5) * cell}" '
            f'r="{0.4 * cell}" fill="{colour}"><title>{escape(f"agent {i}")}</title></circle>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def save_svg_frames(
    directory: str | os.PathLike[str],
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
) -> list[Path]:
    """One SVG per step: DIRECTORY/frame_00000.svg, ..."""
    active = _check_episode(obstacles, positions, goals, active)
    texts = [
        frame_svg(obstacles, positions[t], goals[t], active[t], cell=cell) for t in range(len(positions))
    ]
    return _save_frames(
        directory,
        "svg",
        [lambda temp, text=text: Path(temp).write_text(text, encoding="utf-8") for text in texts],
    )


def save_mp4(
    path: str | os.PathLike[str],
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    cell: int = 12,
    fps: float = 8.0,
) -> Path:
    """An H.264 mp4 via the ffmpeg binary that the `imageio-ffmpeg` wheel ships."""
    imageio_ffmpeg = require("imageio_ffmpeg", "render", "an .mp4 (unlike .gif and .html)")
    _check_fps(fps)
    frames = render_frames(obstacles, positions, goals, active, cell=cell)
    width, height = frames[0].size
    size = (width + width % 2, height + height % 2)  # yuv420p needs even sides

    def encode(temp: str) -> None:
        writer = imageio_ffmpeg.write_frames(
            temp,
            size,
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            output_params=["-f", "mp4"],
            macro_block_size=1,
        )
        writer.send(None)
        for frame in frames:
            canvas = Image.new("RGB", size, FREE_RGB)
            canvas.paste(frame.convert("RGB"))
            writer.send(np.asarray(canvas).tobytes())
        writer.close()

    target = Path(path)
    _atomic_write(target, encode)
    return target


def _int16_base64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<i2").tobytes()).decode("ascii")


def save_html(
    path: str | os.PathLike[str],
    obstacles: np.ndarray,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray | None = None,
    *,
    title: str = "GridSwarm episode",
    fps: float = 8.0,
) -> Path:
    """One self-contained page (no network) with a canvas player: play, pause, step, speed, agent trails,
    and click an agent to follow it."""
    active = _check_episode(obstacles, positions, goals, active)
    _check_fps(fps)
    steps, agents = positions.shape[:2]
    data = {
        "height": int(obstacles.shape[0]),
        "width": int(obstacles.shape[1]),
        "steps": int(steps),
        "agents": int(agents),
        "fps": fps,
        "obstacles": base64.b64encode(np.ascontiguousarray(obstacles, np.uint8).tobytes()).decode("ascii"),
        "positions": _int16_base64(positions),
        "goals": _int16_base64(goals),
        "active": base64.b64encode(np.packbits(active.reshape(-1), bitorder="little").tobytes()).decode(),
        "colours": [_hex(colour) for colour in agent_colours(agents)],
        "free": _hex(np.array(FREE_RGB)),
        "obstacle": _hex(np.array(OBSTACLE_RGB)),
    }
    # sim/player.html: one page, no network; __TITLE__ and __DATA__ become the title and the episode's JSON.
    # Arrays arrive base64-encoded: obstacles (H*W uint8), positions and goals (T*N*2 little-endian int16),
    # active (T*N bits, little-endian). The player mirrors its state on document.body.dataset (frame,
    # playing, follow, trails) for tests.
    template = resources.files("sim").joinpath("player.html").read_text(encoding="utf-8")
    page = template.replace("__TITLE__", escape(title)).replace("__DATA__", json.dumps(data))
    target = Path(path)
    _atomic_write(target, lambda temp: Path(temp).write_text(page, encoding="utf-8"))
    return target


def _atomic_write(target: Path, write: Callable[[str], object]) -> None:
    """Call write(temporary path) next to `target`; the file replaces `target` only once it is complete."""
    with atomic_path(target) as temporary:
        write(str(temporary))
