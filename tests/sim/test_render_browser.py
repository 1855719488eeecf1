"""The HTML player in headless Chromium: stepping, following an agent by clicking it, trails, playing."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from sim.render import agent_colours, save_html

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

INTERACTION = """
<script>
window.addEventListener("load", () => {
  const result = {};
  for (let k = 0; k < 3; k++) document.getElementById("next").click();
  result.frameAfterSteps = document.body.dataset.frame;
  const board = document.getElementById("board"), box = board.getBoundingClientRect(), cell = player.cell;
  board.dispatchEvent(new MouseEvent("click", {bubbles: true,
    clientX: box.left + (FOLLOW_COL + 0.5) * cell, clientY: box.top + (FOLLOW_ROW + 0.5) * cell}));
  result.follow = document.body.dataset.follow;
  result.followText = document.getElementById("follow").textContent;
  const context = board.getContext("2d");
  const pixel = context.getImageData((PIXEL_COL + 0.5) * cell, (PIXEL_ROW + 0.5) * cell, 1, 1).data;
  result.pixel = [pixel[0], pixel[1], pixel[2]];
  document.getElementById("trails").click();
  result.trails = document.body.dataset.trails;
  document.getElementById("speed").value = "8";
  document.getElementById("play").click();
  result.playing = document.body.dataset.playing;
  setTimeout(() => {
    result.frameAfterPlay = document.body.dataset.frame;
    result.playingAtEnd = document.body.dataset.playing;
    const out = document.createElement("pre"); out.id = "result"; out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }, 2000);
});
</script>
"""


def chromium() -> str:
    """The Chromium binary (.ci/run installs it); the test skips, naming the install, where there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or pytest.skip("chromium is not installed (apt-get install chromium)")


def test_player_steps_follows_and_plays_in_chromium(tmp_path):
    browser = chromium()
    rng = np.random.default_rng(4)
    steps, agents = 12, 4
    obstacles = np.zeros((10, 12), np.uint8)
    obstacles[0, :] = 1
    positions = np.stack(
        [np.column_stack([np.full(agents, 2 + t % 7), np.arange(agents) * 3]) for t in range(steps)]
    )
    goals = rng.integers(1, 10, (steps, agents, 2))
    goals[..., 1] %= 12
    page = save_html(tmp_path / "player.html", obstacles, positions, goals).read_text()
    script = INTERACTION
    for name, value in {
        "FOLLOW_ROW": positions[3, 2, 0],
        "FOLLOW_COL": positions[3, 2, 1],
        "PIXEL_ROW": positions[3, 0, 0],
        "PIXEL_COL": positions[3, 0, 1],
    }.items():
        script = script.replace(name, str(int(value)))
    (tmp_path / "scripted.html").write_text(page.replace("</body>", script + "</body>"))
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", (tmp_path / "scripted.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout)
    assert found, f"no result in the dumped DOM; chromium said: {done.stderr[-500:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert result["frameAfterSteps"] == "3"
    assert result["follow"] == "2"
    assert result["followText"].startswith(
        f"following agent 2 at ({positions[3, 2, 0]}, {positions[3, 2, 1]})"
    )
    assert np.abs(np.array(result["pixel"]) - agent_colours(agents)[0]).max() <= 2
    assert result["trails"] == "false" and result["playing"] == "true"
    assert result["frameAfterPlay"] == str(steps - 1) and result["playingAtEnd"] == "false"
