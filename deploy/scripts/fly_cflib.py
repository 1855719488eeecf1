"""Fly a GridSwarm waypoint plan with cflib's high-level commander: lockstep linear go_to, one per grid step.

Written by `gridswarm export` next to waypoints.csv and plan.json. Usage:
    python fly_cflib.py URI0 URI1 ...   (one radio URI per drone, in drone order, e.g. radio://0/80/2M/E7E7E7E701)
"""

import csv
import json
import sys
import time
from pathlib import Path

import cflib.crtp
from cflib.crazyflie.swarm import CachedCfFactory, Swarm

HERE = Path(__file__).resolve().parent
PLAN = json.loads((HERE / "plan.json").read_text())
STEP_DURATION_S = PLAN["step_duration_s"]
NUM_DRONES = PLAN["num_drones"]
TAKEOFF_DURATION_S = 3.0


def load_waypoints(path: Path) -> list[list[tuple[float, float, float]]]:
    """waypoints.csv -> per drone, per step (x, y, z)."""
    tracks: list[list[tuple[float, float, float]]] = [[] for _ in range(NUM_DRONES)]
    with path.open() as file:
        for row in csv.DictReader(file):
            tracks[int(row["drone"])].append((float(row["x_m"]), float(row["y_m"]), float(row["z_m"])))
    return tracks


def take_off(scf, start):
    commander = scf.cf.high_level_commander
    commander.takeoff(start[2], TAKEOFF_DURATION_S)
    time.sleep(TAKEOFF_DURATION_S)
    commander.go_to(start[0], start[1], start[2], 0.0, TAKEOFF_DURATION_S, relative=False, linear=False)
    time.sleep(TAKEOFF_DURATION_S)


def go_to(scf, waypoint):
    scf.cf.high_level_commander.go_to(*waypoint, 0.0, STEP_DURATION_S, relative=False, linear=True)


def land(scf):
    scf.cf.high_level_commander.land(0.0, TAKEOFF_DURATION_S)
    time.sleep(TAKEOFF_DURATION_S)
    scf.cf.high_level_commander.stop()


def main(uris: list[str]) -> None:
    if len(uris) != NUM_DRONES:
        sys.exit(f"fly_cflib.py: error: the plan has {NUM_DRONES} drones, got {len(uris)} URIs")
    tracks = load_waypoints(HERE / "waypoints.csv")
    cflib.crtp.init_drivers()
    with Swarm(uris, factory=CachedCfFactory(rw_cache="./cache")) as swarm:
        swarm.reset_estimators()
        swarm.parallel_safe(take_off, args_dict={uri: [tracks[i][0]] for i, uri in enumerate(uris)})
        for step in range(1, len(tracks[0])):
            swarm.parallel_safe(go_to, args_dict={uri: [tracks[i][step]] for i, uri in enumerate(uris)})
            time.sleep(STEP_DURATION_S)
        swarm.parallel_safe(land)


if __name__ == "__main__":
    main(sys.argv[1:])
