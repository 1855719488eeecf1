"""Fly a GridSwarm plan's smooth trajectories: upload them to every Crazyflie's high-level commander, start
them together, land.

Written by `gridswarm export` next to plan.json, fly_cflib.py (whose take-off and landing it shares) and
crazyswarm2/cf<i>.csv (one 7th-order polynomial piece per row: duration, then 8 coefficients for each of x, y,
z, yaw). Usage:
    python fly_hlc.py URI0 URI1 ...   (one radio URI per drone, in drone order)
A trajectory that does not fit a drone's trajectory memory (4096 bytes, 132 per piece, in the firmware's
default build) is refused before take-off; fly_cflib.py flies the same plan with go_to instead.
"""

import csv
import sys
import time
from pathlib import Path

import cflib.crtp
from cflib.crazyflie.mem import MemoryElement, Poly4D
from cflib.crazyflie.swarm import CachedCfFactory, Swarm
from fly_cflib import HERE, NUM_DRONES, land, take_off

TRAJECTORY_ID = 1
BYTES_PER_PIECE = 132


def load_pieces(path: Path) -> list[list[float]]:
    """cf<i>.csv -> rows of 33 numbers: duration, x^0..x^7, y^0..y^7, z^0..z^7, yaw^0..yaw^7."""
    with path.open() as file:
        return [[float(value) for value in row] for row in list(csv.reader(file))[1:]]


def start_of(pieces: list[list[float]]) -> tuple[float, float, float]:
    return pieces[0][1], pieces[0][9], pieces[0][17]


def upload(scf, pieces):
    memory = scf.cf.mem.get_mems(MemoryElement.TYPE_TRAJ)[0]
    if len(pieces) * BYTES_PER_PIECE > memory.size:
        raise RuntimeError(f"{len(pieces)} pieces do not fit {memory.size} bytes of trajectory memory")
    memory.trajectory = [
        Poly4D(
            row[0],
            Poly4D.Poly(row[1:9]),
            Poly4D.Poly(row[9:17]),
            Poly4D.Poly(row[17:25]),
            Poly4D.Poly(row[25:33]),
        )
        for row in pieces
    ]
    if not memory.write_data_sync():
        raise RuntimeError("trajectory upload failed")
    scf.cf.high_level_commander.define_trajectory(TRAJECTORY_ID, 0, len(pieces))


def start_trajectory(scf):
    scf.cf.high_level_commander.start_trajectory(TRAJECTORY_ID, 1.0, relative=False)


def main(uris: list[str]) -> None:
    if len(uris) != NUM_DRONES:
        sys.exit(f"fly_hlc.py: error: the plan has {NUM_DRONES} drones, got {len(uris)} URIs")
    pieces = [load_pieces(HERE / "crazyswarm2" / f"cf{drone}.csv") for drone in range(NUM_DRONES)]
    if not all(pieces):
        sys.exit("fly_hlc.py: error: the plan has no steps to fly")
    duration = max(sum(row[0] for row in rows) for rows in pieces)
    cflib.crtp.init_drivers()
    with Swarm(uris, factory=CachedCfFactory(rw_cache="./cache")) as swarm:
        swarm.parallel_safe(upload, args_dict={uri: [pieces[i]] for i, uri in enumerate(uris)})
        swarm.reset_estimators()
        swarm.parallel_safe(take_off, args_dict={uri: [start_of(pieces[i])] for i, uri in enumerate(uris)})
        swarm.parallel_safe(start_trajectory)
        time.sleep(duration)
        swarm.parallel_safe(land)


if __name__ == "__main__":
    main(sys.argv[1:])
