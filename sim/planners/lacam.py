"""LaCAM: complete one-shot MAPF by a lazy search over configurations, PIBT generating the successors.

Okumura, "LaCAM: Search-Based Algorithm for Quick Multi-Agent Pathfinding", AAAI 2023. A high-level node
is a configuration (every agent's cell); the search is depth-first over configurations, and each node
generates its successors lazily: a breadth-first tree of constraints (low-level nodes) fixes the next cell
of one more agent per level, in the node's agent order, and PIBT moves the unconstrained agents. A node is
dropped once its tree is exhausted, so every successor of every reached configuration is tried in the end:
the search finds a solution whenever one exists and, given no node limit, reports when none exists.

The successor generator is PIBT as in LaCAM (`_Successors.pibt`): agents in the node's order (PIBT's
dynamic priorities, `_Successors.node`), candidates by distance to the goal with random ties, priority
inheritance, no vertex or swap conflict; with `swap`, LaCAM3's swap technique (Okumura, "Engineering LaCAM*",
AAMAS 2024): an agent whose best cell is held by one it must pass head-on in a corridor takes its worst cell
and pulls the other through. Solutions keep an agent that reached its goal there (it may be pushed off and
return); the paths are free of vertex and swap conflicts, so POGEMA's `soft` collision rule executes them
exactly. This is a reference implementation in Python over flat cell indices, for instances of up to a few
hundred agents.

With `refine`, LaCAM* (Okumura, "Improving LaCAM for Scalable Eventually Optimal Multi-Agent Pathfinding",
IJCAI 2023): the search goes on after the first solution. Each node keeps g, the sum of loss of the best
known way to it (an agent costs 1 per step unless it stays on its goal), and h, the sum of its agents'
distances to their goals; a node whose g + h cannot beat the solution is dropped, and reaching a known
configuration adds an edge and rewires (g decreases propagate, with the parent pointers, through the edges
known so far), so the solution's cost only decreases; once the search is exhausted it is optimal. LaCAM2's
random restarts and LaCAM3's other engineering are not part of it.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.actions import MOVES
from sim.distance import UNREACHABLE, bfs_distance

MAX_AGENTS = sys.getrecursionlimit() // 2
"""PIBT's priority inheritance recurses once per agent of a chain; Python's recursion limit bounds it."""


@dataclass(frozen=True)
class LaCAMResult:
    """What `lacam` found. `paths` (T+1, N, 2) int64: each agent's (row, col) at every step, the starts
    first and the goals last (None without a solution); `exhausted`: the search ran out of configurations,
    so no solution exists, or with `refine` and a solution, that solution's sum of loss is optimal;
    `nodes`: configurations reached; `steps`: constraints tried (one PIBT call each); `cost`: the sum of
    loss of `paths` (steps an agent is not staying on its goal; None without a solution)."""

    paths: np.ndarray | None
    exhausted: bool
    nodes: int
    steps: int
    cost: int | None = None

    @property
    def solved(self) -> bool:
        return self.paths is not None


@dataclass(eq=False)
class _Node:
    """A high-level node: a configuration, where it was reached from, its agents' priorities and the order
    they give, and its constraint tree (pending (agents, cells) pairs, breadth first)."""

    config: tuple[int, ...]
    parent: _Node | None
    priorities: np.ndarray  # (N,) float64
    order: list[int]
    tree: deque[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=lambda: deque([((), ())]))
    g: int = 0  # LaCAM*: the sum of loss of the best known way here
    h: int = 0  # LaCAM*: the sum of the agents' distances to their goals
    # LaCAM*: the successors known, by configuration
    edges: dict[tuple[int, ...], _Node] = field(default_factory=dict)

    @property
    def f(self) -> int:
        return self.g + self.h


def lacam(
    obstacles: np.ndarray,
    starts: np.ndarray,
    goals: np.ndarray,
    *,
    step_limit: int = 1_000_000,
    seed: int = 0,
    swap: bool = True,
    refine: bool = False,
) -> LaCAMResult:
    """Paths for every agent from `starts` to `goals` ((N, 2) (row, col), distinct free cells) on the
    (H, W) map `obstacles` (nonzero = obstacle), moving in 4 directions or staying, free of vertex and swap
    conflicts. Stops after `step_limit` constraints tried (`exhausted` False then), which bounds the work
    however many of them lead back to known configurations: without a solution, or with `refine` with the
    best found so far. `seed` breaks PIBT's ties and orders the constraints; `swap`: PIBT with LaCAM3's swap
    technique; `refine`: LaCAM*, lowering the sum of loss until the limit or optimality (module docstring)."""
    obstacles, starts, goals = _checked(obstacles, starts, goals)
    width = obstacles.shape[1]
    distances = _distance_fields(obstacles, goals)  # (N, H*W) int32
    start = tuple(int(r * width + c) for r, c in starts)
    goal = tuple(int(r * width + c) for r, c in goals)
    if (distances[np.arange(len(start)), np.asarray(start)] >= UNREACHABLE).any():  # a goal out of reach
        return LaCAMResult(None, exhausted=True, nodes=0, steps=0)
    rng = np.random.default_rng(seed)
    successors = _Successors(_neighbours(obstacles), distances, goal, rng, swap)
    root = successors.node(start, None)
    stack, explored, nodes, steps = [root], {start: root}, 1, 0
    found: _Node | None = None  # LaCAM*: the goal's node once reached

    def promising(node: _Node) -> bool:
        return found is None or node.f < found.g

    while stack:
        node = stack[-1]
        if node.config == goal and found is None:
            found = node
            if not refine:
                break
        if not promising(node) or not node.tree:
            stack.pop()
            continue
        if steps == step_limit:
            break
        steps += 1
        agents, cells = node.tree.popleft()
        if len(agents) < len(start):
            agent = node.order[len(agents)]
            here = node.config[agent]
            choices = [here, *successors.neighbours[here]]
            rng.shuffle(choices)
            node.tree.extend(((*agents, agent), (*cells, cell)) for cell in choices)
        config = successors.generate(node, agents, cells)
        if config is None:
            continue
        known = explored.get(config)
        if known is None:
            known = explored[config] = successors.node(config, node)
            nodes += 1
            if refine:
                known.g, known.h = node.g + successors.loss(node.config, config), successors.h(config)
                node.edges[config] = known
        elif refine:
            node.edges[config] = known
            stack.extend(_rewire(node, successors, promising))
        if promising(known):
            stack.append(known)
    if found is None:
        return LaCAMResult(None, exhausted=not stack, nodes=nodes, steps=steps)
    configs = _configs(found)
    cost = sum(successors.loss(a, b) for a, b in itertools.pairwise(configs))
    return LaCAMResult(_cells(configs, width), exhausted=not stack, nodes=nodes, steps=steps, cost=cost)


def _rewire(source: _Node, successors: _Successors, promising: Callable[[_Node], bool]) -> list[_Node]:
    """LaCAM*'s rewiring: propagate lower g values from `source` through the known edges (breadth first, as
    LaCAM2 does), moving parent pointers along; the nodes whose g fell and that can still beat the solution
    (to search again)."""
    again, queue = [], deque([source])
    while queue:
        node = queue.popleft()
        for successor in node.edges.values():
            g = node.g + successors.loss(node.config, successor.config)
            if g < successor.g:
                successor.g, successor.parent = g, node
                queue.append(successor)
                if promising(successor):
                    again.append(successor)
    return again


class _Successors:
    """PIBT under constraints over flat cells (with LaCAM3's swap technique when `swap`): `generate` the
    configuration after `node`'s with the given agents' next cells fixed, or None when they conflict or
    PIBT fails."""

    def __init__(
        self,
        neighbours: list[list[int]],
        distances: np.ndarray,
        goals: tuple[int, ...],
        rng: np.random.Generator,
        swap: bool,
    ) -> None:
        self.neighbours, self.distances, self.goals = neighbours, distances, goals
        self.rng, self.swap = rng, swap
        self.current: tuple[int, ...] = ()
        self.next: list[int] = []
        self.standing: dict[int, int] = {}  # cell -> the agent on it now
        self.claimed: dict[int, int] = {}  # cell -> the agent moving into it

    def node(self, config: tuple[int, ...], parent: _Node | None) -> _Node:
        """The node of `config` reached from `parent`, with PIBT's dynamic priorities as LaCAM sets them: at
        the start each agent's distance to its goal over N; then +1 for an agent away from its goal, back to
        the fractional part at the goal. Its agents in decreasing priority, ties at random."""
        distance = self.distances[np.arange(len(config)), np.asarray(config)].astype(np.float64)  # (N,)
        if parent is None:
            priorities = distance / len(config)
        else:
            away = parent.priorities + 1.0
            priorities = np.where(distance > 0, away, parent.priorities - np.floor(parent.priorities))
        order = [int(i) for i in np.lexsort((self.rng.random(len(config)), -priorities))]
        return _Node(config, parent, priorities, order)

    def loss(self, config: tuple[int, ...], successor: tuple[int, ...]) -> int:
        """LaCAM*'s edge cost: the agents that do not stay on their goals from `config` to `successor`."""
        goals = self.goals
        return sum(1 for a, b, g in zip(config, successor, goals, strict=True) if not a == b == g)

    def h(self, config: tuple[int, ...]) -> int:
        """LaCAM*'s heuristic: the sum of the agents' distances to their goals (a lower bound on the loss)."""
        return int(self.distances[np.arange(len(config)), np.asarray(config)].sum())

    def generate(
        self, node: _Node, agents: tuple[int, ...], cells: tuple[int, ...]
    ) -> tuple[int, ...] | None:
        self.current = node.config
        self.next = [-1] * len(node.config)
        self.standing = {cell: agent for agent, cell in enumerate(node.config)}
        self.claimed = {}
        for agent, cell in zip(agents, cells, strict=True):
            if cell in self.claimed:
                return None  # two constraints on one cell
            self.claimed[cell] = agent
            self.next[agent] = cell
        for agent, cell in zip(agents, cells, strict=True):
            other = self.standing.get(cell, agent)
            if other != agent and self.next[other] == self.current[agent]:
                return None  # two constrained agents swap
        for agent in node.order:
            if self.next[agent] < 0 and not self.pibt(agent):
                return None
        return tuple(self.next)

    def pibt(self, agent: int) -> bool:
        here = self.current[agent]
        candidates = [here, *self.neighbours[here]]
        distance = self.distances[agent]
        ties = self.rng.random(len(candidates))
        keyed = zip([distance[c] for c in candidates], ties, candidates, strict=True)
        ordered = [cell for _, _, cell in sorted(keyed)]  # by distance to the goal, ties at random
        partner = self.swap_partner(agent, ordered[0]) if self.swap else -1
        if partner >= 0:
            ordered.reverse()  # the worst cell first, making room to pull the partner through
        for k, cell in enumerate(ordered):
            if cell in self.claimed:
                continue
            other = self.standing.get(cell, -1)
            if other >= 0 and self.next[other] == here:
                continue  # a swap
            self.next[agent], self.claimed[cell] = cell, agent
            if other >= 0 and other != agent and self.next[other] < 0 and not self.pibt(other):
                continue  # the occupant cannot move away: try the next cell
            if k == 0 and partner >= 0 and self.next[partner] < 0 and here not in self.claimed:
                self.next[partner], self.claimed[here] = here, partner  # pull the partner into our cell
            return True
        self.next[agent], self.claimed[here] = here, agent
        return False

    def swap_partner(self, agent: int, best: int) -> int:
        """LaCAM3's swap test: the agent that must pass `agent` head-on in a corridor to let it reach its
        best cell `best` and can (a side branch further on), or -1."""
        here = self.current[agent]
        if best == here:
            return -1
        other = self.standing.get(best, -1)
        if (
            other >= 0
            and self.next[other] < 0
            and self.swap_required(agent, other, here, best)
            and self.swap_possible(best, here)
        ):
            return other
        for cell in self.neighbours[here]:  # clearing the way, as in push and swap
            neighbour = self.standing.get(cell, -1)
            if (
                neighbour >= 0
                and cell != best
                and self.swap_required(neighbour, agent, here, best)
                and self.swap_possible(best, here)
            ):
                return neighbour
        return -1

    def swap_required(self, pusher: int, puller: int, pusher_cell: int, puller_cell: int) -> bool:
        """Walking from the puller's cell along a corridor while that brings the pusher closer to its goal,
        does the corridor end before a side branch lets them pass (and would both gain by swapping)?"""
        to_pusher_goal, to_puller_goal = self.distances[pusher], self.distances[puller]
        while to_pusher_goal[puller_cell] < to_pusher_goal[pusher_cell]:
            count, onward = self.corridor_step(puller_cell, pusher_cell)
            if count >= 2:
                return False
            if count <= 0:
                break
            pusher_cell, puller_cell = puller_cell, onward
        pusher_here = to_pusher_goal[pusher_cell]
        pusher_gains = pusher_here == 0 or to_pusher_goal[puller_cell] < pusher_here
        return bool(to_puller_goal[pusher_cell] < to_puller_goal[puller_cell] and pusher_gains)

    def swap_possible(self, pusher_origin: int, puller_origin: int) -> bool:
        """Pulling along the corridor from `puller_origin`, is there a side branch to pass at?"""
        pusher_cell, puller_cell = pusher_origin, puller_origin
        for _ in range(len(self.neighbours)):  # a corridor walk ends long before; this bounds the loop
            if puller_cell == pusher_origin:
                return False
            count, onward = self.corridor_step(puller_cell, pusher_cell)
            if count >= 2:
                return True
            if count <= 0:
                return False
            pusher_cell, puller_cell = puller_cell, onward
        return False

    def corridor_step(self, cell: int, behind: int) -> tuple[int, int]:
        """The free neighbours of `cell` other than `behind` and than dead ends where an agent rests on its
        goal: their count and the last of them."""
        count, onward = 0, -1
        for neighbour in self.neighbours[cell]:
            if neighbour == behind:
                continue
            holder = self.standing.get(neighbour, -1)
            if holder >= 0 and self.goals[holder] == neighbour and len(self.neighbours[neighbour]) == 1:
                continue
            count, onward = count + 1, neighbour
        return count, onward


def _checked(obstacles: np.ndarray, starts: np.ndarray, goals: np.ndarray) -> tuple[np.ndarray, ...]:
    obstacles = np.asarray(obstacles)
    starts, goals = np.asarray(starts, dtype=np.int64), np.asarray(goals, dtype=np.int64)
    if obstacles.ndim != 2 or obstacles.size == 0:
        raise ValueError(f"obstacles: expected a non-empty (H, W) array, got shape {obstacles.shape}")
    for name, cells in (("starts", starts), ("goals", goals)):
        if cells.ndim != 2 or cells.shape[1] != 2 or cells.shape != starts.shape:
            raise ValueError(f"{name}: expected (N, 2) (row, col) like starts, got shape {cells.shape}")
        inside = (cells >= 0).all(axis=1) & (cells < obstacles.shape).all(axis=1)
        if not inside.all():
            raise ValueError(f"{name}[{int(np.argmin(inside))}]: outside the {obstacles.shape} map")
        blocked = obstacles[cells[:, 0], cells[:, 1]] != 0
        if blocked.any():
            raise ValueError(f"{name}[{int(np.argmax(blocked))}]: on an obstacle")
        if len(np.unique(cells, axis=0)) != len(cells):
            raise ValueError(f"{name}: two agents share a cell")
    if len(starts) > MAX_AGENTS:
        raise ValueError(f"{len(starts)} agents: this LaCAM takes at most {MAX_AGENTS}")
    return (obstacles != 0).astype(np.uint8), starts, goals


def _distance_fields(obstacles: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(N, H*W) int32: moves from every cell to each agent's goal (one field per distinct goal)."""
    height, width = obstacles.shape
    queue = np.empty(height * width, np.int32)
    fields: dict[tuple[int, int], np.ndarray] = {}
    for row, col in goals:
        key = (int(row), int(col))
        if key not in fields:
            out = np.empty((height, width), np.int32)
            bfs_distance(obstacles, key[0], key[1], out, queue)
            fields[key] = out.reshape(-1)
    return np.stack([fields[(int(r), int(c))] for r, c in goals])


def _neighbours(obstacles: np.ndarray) -> list[list[int]]:
    """Each flat cell's free 4-neighbours (in the order of `sim.actions.MOVES`)."""
    height, width = obstacles.shape
    neighbours: list[list[int]] = []
    for cell in range(height * width):
        row, col = divmod(cell, width)
        cells = [(row + int(dr), col + int(dc)) for dr, dc in MOVES[1:]]
        neighbours.append(
            [r * width + c for r, c in cells if 0 <= r < height and 0 <= c < width and not obstacles[r, c]]
        )
    return neighbours


def _configs(node: _Node) -> list[tuple[int, ...]]:
    """The configurations from the start to `node`, along the parent pointers."""
    configs = []
    while node is not None:
        configs.append(node.config)
        node = node.parent
    return configs[::-1]


def _cells(configs: list[tuple[int, ...]], width: int) -> np.ndarray:
    """(T+1, N, 2) int64 (row, col) of flat-cell configurations."""
    flat = np.array(configs, dtype=np.int64)  # (T+1, N)
    return np.stack([flat // width, flat % width], axis=-1)
