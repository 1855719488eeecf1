# ruff: noqa: E501  (the embedded HTML/JavaScript keeps its own line lengths)
"""The HTML episode player's page (used by `sim.render.save_html`): one file, no network.

`__TITLE__` and `__DATA__` are replaced by the title and the episode's JSON. Arrays arrive base64-encoded:
obstacles (H*W uint8), positions and goals (T*N*2 little-endian int16), active (T*N bits, little-endian).
The player state is mirrored on `document.body.dataset` (frame, playing, follow, trails) for tests.
"""

PLAYER_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
#controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
#frame-slider { width: 320px; }
canvas { border: 1px solid #999; cursor: crosshair; image-rendering: pixelated; }
#status, #follow { font-variant-numeric: tabular-nums; }
</style></head>
<body>
<h3>__TITLE__</h3>
<div id="controls">
  <button id="prev" title="step back (left arrow)">&#9664;</button>
  <button id="play" title="play / pause (space)">play</button>
  <button id="next" title="step forward (right arrow)">&#9654;</button>
  <input id="frame-slider" type="range" min="0" value="0">
  <label>speed <select id="speed">
    <option value="0.25">0.25x</option><option value="0.5">0.5x</option><option value="1" selected>1x</option>
    <option value="2">2x</option><option value="4">4x</option><option value="8">8x</option></select></label>
  <label><input id="trails" type="checkbox" checked> trails</label>
  <label>length <input id="trail-length" type="number" min="1" max="1000" value="10" style="width:4em"></label>
  <span id="status"></span>
</div>
<canvas id="board"></canvas>
<div id="follow">click an agent to follow it</div>
<script>
"use strict";
const DATA = __DATA__;
function bytes(b64) { const s = atob(b64); const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; }
const H = DATA.height, W = DATA.width, T = DATA.steps, N = DATA.agents;
const obstacles = bytes(DATA.obstacles);
const positions = new Int16Array(bytes(DATA.positions).buffer);
const goals = new Int16Array(bytes(DATA.goals).buffer);
const activeBits = bytes(DATA.active);
const active = (t, i) => (activeBits[(t * N + i) >> 3] >> ((t * N + i) & 7)) & 1;
const row = (a, t, i) => a[(t * N + i) * 2], col = (a, t, i) => a[(t * N + i) * 2 + 1];
const cell = Math.max(3, Math.min(24, Math.floor(760 / Math.max(H, W))));
const board = document.getElementById("board");
board.width = W * cell; board.height = H * cell;
const ctx = board.getContext("2d");
const background = document.createElement("canvas");
background.width = board.width; background.height = board.height;
{ const g = background.getContext("2d"); g.fillStyle = DATA.free; g.fillRect(0, 0, board.width, board.height);
  g.fillStyle = DATA.obstacle;
  for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) if (obstacles[r * W + c]) g.fillRect(c * cell, r * cell, cell, cell); }
const ui = {};
for (const id of ["prev", "play", "next", "frame-slider", "speed", "trails", "trail-length", "status", "follow"])
  ui[id] = document.getElementById(id);
ui["frame-slider"].max = Math.max(0, T - 1);
const state = { frame: 0, playing: false, follow: -1, timer: null };

function drawTrail(i, t, length) {
  ctx.strokeStyle = DATA.colours[i]; ctx.globalAlpha = 0.5; ctx.lineWidth = Math.max(1, cell / 6);
  ctx.beginPath();
  for (let s = Math.max(0, t - length); s <= t; s++) {
    const x = (col(positions, s, i) + 0.5) * cell, y = (row(positions, s, i) + 0.5) * cell;
    if (s === Math.max(0, t - length)) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  ctx.stroke(); ctx.globalAlpha = 1;
}

function draw() {
  const t = state.frame;
  ctx.drawImage(background, 0, 0);
  const length = Math.max(1, parseInt(ui["trail-length"].value, 10) || 1);
  if (ui.trails.checked) for (let i = 0; i < N; i++) if (active(t, i)) drawTrail(i, t, length);
  for (let i = 0; i < N; i++) {
    if (!active(t, i)) continue;
    ctx.strokeStyle = DATA.colours[i]; ctx.lineWidth = Math.max(1, cell / 8);
    ctx.strokeRect(col(goals, t, i) * cell + 1.5, row(goals, t, i) * cell + 1.5, cell - 3, cell - 3);
    ctx.fillStyle = DATA.colours[i]; ctx.beginPath();
    ctx.arc((col(positions, t, i) + 0.5) * cell, (row(positions, t, i) + 0.5) * cell, 0.4 * cell, 0, 2 * Math.PI);
    ctx.fill();
  }
  const f = state.follow;
  if (f >= 0) {
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
    ctx.arc((col(positions, t, f) + 0.5) * cell, (row(positions, t, f) + 0.5) * cell, 0.7 * cell, 0, 2 * Math.PI);
    ctx.stroke();
    ui.follow.textContent = `following agent ${f} at (${row(positions, t, f)}, ${col(positions, t, f)}), goal (` +
      `${row(goals, t, f)}, ${col(goals, t, f)})${active(t, f) ? "" : ", inactive"}`;
  } else ui.follow.textContent = "click an agent to follow it";
  ui.status.textContent = `step ${t + 1} / ${T}`;
  ui["frame-slider"].value = t;
  ui.play.textContent = state.playing ? "pause" : "play";
  Object.assign(document.body.dataset, { frame: t, playing: state.playing, follow: f, trails: ui.trails.checked });
}

function show(t) { state.frame = Math.min(Math.max(t, 0), Math.max(T - 1, 0)); draw(); }
function schedule() {
  clearTimeout(state.timer);
  if (!state.playing) return;
  state.timer = setTimeout(() => {
    if (state.frame >= T - 1) { state.playing = false; draw(); return; }
    show(state.frame + 1); schedule();
  }, 1000 / (DATA.fps * parseFloat(ui.speed.value)));
}
function setPlaying(on) { state.playing = on && T > 1; if (state.playing && state.frame >= T - 1) state.frame = 0; draw(); schedule(); }
function agentAt(r, c, t) {
  for (let i = 0; i < N; i++) if (active(t, i) && row(positions, t, i) === r && col(positions, t, i) === c) return i;
  return -1;
}
ui.play.onclick = () => setPlaying(!state.playing);
ui.prev.onclick = () => { setPlaying(false); show(state.frame - 1); };
ui.next.onclick = () => { setPlaying(false); show(state.frame + 1); };
ui["frame-slider"].oninput = () => show(parseInt(ui["frame-slider"].value, 10));
ui.speed.onchange = schedule;
ui.trails.onchange = draw; ui["trail-length"].oninput = draw;
board.addEventListener("click", (event) => {
  const box = board.getBoundingClientRect();
  const c = Math.floor((event.clientX - box.left) * board.width / box.width / cell);
  const r = Math.floor((event.clientY - box.top) * board.height / box.height / cell);
  state.follow = agentAt(r, c, state.frame); draw();
});
document.addEventListener("keydown", (event) => {
  if (event.key === " ") { event.preventDefault(); setPlaying(!state.playing); }
  else if (event.key === "ArrowLeft") ui.prev.onclick();
  else if (event.key === "ArrowRight") ui.next.onclick();
});
window.player = { show, setPlaying, state, cell };
draw();
</script>
</body></html>
"""
