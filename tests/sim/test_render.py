"""Rendering: pixels where agents, goals and obstacles are; GIF frames; SVG structure; the HTML page."""

from __future__ import annotations

import base64
import json
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sim.render import (
    FREE_RGB,
    OBSTACLE_RGB,
    PROGRESS_ROWS,
    RenderError,
    agent_colours,
    frame_svg,
    render_frames,
    save_gif,
    save_html,
    save_png_frames,
    save_svg_frames,
)

CELL = 10


def random_episode(seed: int, steps: int, agents: int, height: int, width: int):
    """A map with free cells for every agent, and agents on distinct free cells in every frame."""
    rng = np.random.default_rng(seed)
    obstacles = (rng.random((height, width)) < 0.25).astype(np.uint8)
    free = np.argwhere(obstacles == 0)
    positions = np.stack([free[rng.permutation(len(free))[:agents]] for _ in range(steps)])
    goals = np.stack([free[rng.permutation(len(free))[:agents]] for _ in range(steps)])
    active = rng.random((steps, agents)) < 0.7
    return obstacles, positions, goals, active


def rgb_at(image: Image.Image, row: int, col: int, dy: int, dx: int) -> tuple[int, ...]:
    return image.convert("RGB").getpixel((col * CELL + dx, row * CELL + dy))


@settings(max_examples=20)
@given(
    seed=st.integers(0, 10**6),
    steps=st.integers(1, 4),
    agents=st.integers(1, 12),
    height=st.integers(5, 12),
    width=st.integers(5, 12),
)
def test_pixels_show_agents_goals_and_obstacles(seed, steps, agents, height, width):
    obstacles, positions, goals, active = random_episode(seed, steps, agents, height, width)
    frames = render_frames(obstacles, positions, goals, active, cell=CELL)
    colours = [tuple(int(v) for v in c) for c in agent_colours(agents)]
    assert len(frames) == steps
    for t, frame in enumerate(frames):
        assert frame.size == (width * CELL, height * CELL)
        for r, c in np.argwhere(obstacles):
            assert rgb_at(frame, r, c, CELL // 2, CELL // 2) == OBSTACLE_RGB
        agent_cells = {tuple(positions[t, i]) for i in np.flatnonzero(active[t])}
        for i in range(agents):
            (r, c), (gr, gc) = positions[t, i], goals[t, i]
            if active[t, i]:
                assert rgb_at(frame, r, c, CELL // 2, CELL // 2) == colours[i]
            elif (r, c) not in agent_cells and not (goals[t, active[t]] == (r, c)).all(axis=1).any():
                assert rgb_at(frame, r, c, CELL // 2, CELL // 2) == FREE_RGB  # finished agents are hidden
            goal_is_hidden = (gr, gc) in agent_cells or not active[t, i]
            if not goal_is_hidden and (goals[t, active[t]] == (gr, gc)).all(axis=1).sum() == 1:
                assert rgb_at(frame, gr, gc, 1, CELL // 2) == colours[i]  # the goal's outline
                assert rgb_at(frame, gr, gc, CELL // 2, CELL // 2) == FREE_RGB  # hollow inside


def test_agent_colours_are_distinct():
    colours = agent_colours(200)
    assert len({tuple(c) for c in colours}) == 200
    assert not any(tuple(c) in (FREE_RGB, OBSTACLE_RGB) for c in colours)


def test_gif_has_one_frame_per_step_with_agent_colours(tmp_path):
    obstacles, positions, goals, active = random_episode(3, 6, 4, 8, 9)
    active[:] = True
    path = save_gif(tmp_path / "episode.gif", obstacles, positions, goals, active, cell=CELL)
    colours = agent_colours(4)
    with Image.open(path) as gif:
        assert gif.n_frames == 6
        for t in range(6):
            gif.seek(t)
            frame = gif.convert("RGB")
            for i in range(4):
                r, c = positions[t, i]
                assert frame.getpixel((c * CELL + CELL // 2, r * CELL + CELL // 2)) == tuple(colours[i])


def test_gif_keeps_a_frame_for_every_step_when_nothing_moves(tmp_path):
    obstacles, positions, goals, _ = random_episode(3, 1, 2, 5, 5)
    still = np.repeat(positions[:1], 40, axis=0)  # 40 identical steps: Pillow would merge them into one
    path = save_gif(tmp_path / "still.gif", obstacles, still, np.repeat(goals[:1], 40, axis=0), cell=CELL)
    with Image.open(path) as gif:
        assert gif.n_frames == 40
        assert gif.size == (5 * CELL, 5 * CELL + PROGRESS_ROWS)
        bar_lengths = []
        for t in range(40):
            gif.seek(t)
            bar = np.asarray(gif.convert("RGB"))[-1]
            bar_lengths.append(int((bar != FREE_RGB).any(axis=1).sum()))
    assert bar_lengths == sorted(bar_lengths) and bar_lengths[-1] == 5 * CELL  # fills up, ends full


def test_png_frames_match_in_memory_frames(tmp_path):
    obstacles, positions, goals, active = random_episode(5, 3, 5, 6, 7)
    files = save_png_frames(tmp_path / "frames", obstacles, positions, goals, active, cell=CELL)
    assert [f.name for f in files] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for file, frame in zip(files, render_frames(obstacles, positions, goals, active, cell=CELL), strict=True):
        with Image.open(file) as png:
            assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(frame.convert("RGB")))


def test_svg_has_one_agent_element_per_active_agent(tmp_path):
    obstacles, positions, goals, active = random_episode(7, 2, 9, 10, 10)
    root = ET.fromstring(frame_svg(obstacles, positions[0], goals[0], active[0], cell=CELL))
    ns = "{http://www.w3.org/2000/svg}"
    agents = [e for e in root.iter(f"{ns}circle") if e.get("class") == "agent"]
    assert sorted(int(e.get("data-agent")) for e in agents) == list(np.flatnonzero(active[0]))
    for element in agents:
        i = int(element.get("data-agent"))
        assert float(element.get("cx")) == (positions[0, i, 1] + 0.5) * CELL
        assert float(element.get("cy")) == (positions[0, i, 0] + 0.5) * CELL
    goals_drawn = [e for e in root.iter(f"{ns}rect") if e.get("class") == "goal"]
    assert all(e.get("fill") == "none" for e in goals_drawn) and len(goals_drawn) == len(agents)
    assert len([e for e in root.iter(f"{ns}rect") if e.get("class") == "obstacle"]) == obstacles.sum()
    files = save_svg_frames(tmp_path, obstacles, positions, goals, active, cell=CELL)
    assert len(files) == 2 and ET.parse(files[1]).getroot().tag == f"{ns}svg"


def test_html_is_self_contained_and_carries_the_episode(tmp_path):
    obstacles, positions, goals, active = random_episode(11, 5, 3, 6, 8)
    page = save_html(tmp_path / "episode.html", obstacles, positions, goals, active).read_text()
    assert not re.search(r"(src|href)=\"https?:", page)
    data = json.loads(re.search(r"const DATA = (\{.*?\});\n", page).group(1))
    stored = np.frombuffer(base64.b64decode(data["positions"]), "<i2").reshape(positions.shape)
    np.testing.assert_array_equal(stored, positions)
    bits = np.unpackbits(np.frombuffer(base64.b64decode(data["active"]), np.uint8), bitorder="little")
    np.testing.assert_array_equal(bits[: active.size].reshape(active.shape), active)
    for control in ("play", "prev", "next", "speed", "trails", "frame-slider"):
        assert f'id="{control}"' in page


def test_bad_shapes_and_cells_are_clear_errors():
    obstacles = np.zeros((4, 4), np.uint8)
    with pytest.raises(RenderError, match="outside the 4x4 map"):
        render_frames(obstacles, np.full((1, 1, 2), 4), np.zeros((1, 1, 2), int))
    with pytest.raises(RenderError, match=r"\(T, N, 2\)"):
        render_frames(obstacles, np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(RenderError, match="active must be"):
        render_frames(obstacles, np.zeros((2, 1, 2), int), np.zeros((2, 1, 2), int), np.ones((1, 1), bool))


def test_mp4_has_every_frame_with_agent_colours(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="mp4 needs the imageio-ffmpeg package")
    from sim.render import save_mp4

    obstacles, positions, goals, active = random_episode(13, 7, 3, 6, 8)
    active[:] = True
    path = save_mp4(tmp_path / "e.mp4", obstacles, positions, goals, active, cell=CELL)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (8 * CELL, 6 * CELL)
    frames = [np.frombuffer(raw, np.uint8).reshape(6 * CELL, 8 * CELL, 3) for raw in reader]
    assert len(frames) == 7
    for i, colour in enumerate(agent_colours(3)):
        r, c = positions[6, i]
        pixel = frames[6][r * CELL + CELL // 2, c * CELL + CELL // 2].astype(int)
        assert np.abs(pixel - colour).max() < 40  # H.264 is lossy; colours stay close


def test_mp4_without_imageio_ffmpeg_names_the_render_extra_and_writes_nothing(tmp_path, monkeypatch):
    from optdeps import MissingPackageError
    from sim.render import save_mp4

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    with pytest.raises(
        MissingPackageError, match=r"^an \.mp4 \(unlike \.gif and \.html\) needs .*\[render\]"
    ):
        save_mp4(tmp_path / "e.mp4", *random_episode(13, 7, 3, 6, 8))
    assert list(tmp_path.iterdir()) == []


def test_planned_paths_are_drawn_under_agents():
    from sim.render import PATH_RGB

    obstacles = np.zeros((5, 6), np.uint8)
    positions, goals = np.array([[[0, 0]]]), np.array([[[0, 5]]])
    path = np.array([[0, 0], [0, 1], [0, 2], [1, 2]])
    frame = render_frames(obstacles, positions, goals, cell=CELL, paths=[path])[0]
    for r, c in path[1:]:
        assert rgb_at(frame, r, c, CELL // 2, CELL // 2) == PATH_RGB
    assert rgb_at(frame, 0, 0, CELL // 2, CELL // 2) == tuple(agent_colours(1)[0])
    assert rgb_at(frame, 2, 2, CELL // 2, CELL // 2) == FREE_RGB
