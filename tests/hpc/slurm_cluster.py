"""A real one-node SLURM cluster on localhost, for tests: munged, slurmctld and slurmd run as root from a
private directory (config, state, logs, sockets) on free ports, and stop when the cluster stops.

    with LocalSlurmCluster(tmp_dir) as cluster:       # or cluster.start() / cluster.stop()
        subprocess.run(["sbatch", ...], env=cluster.env)

`unavailable_reason()` says why a cluster cannot start here (no SLURM binaries, not root), so tests can skip
with that reason. Needs the Debian/Ubuntu packages slurmd slurmctld slurm-client munge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")
PARTITION = "debug"


def unavailable_reason() -> str | None:
    """Why a local cluster cannot run on this machine, or None when it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        packages = "slurmd slurmctld slurm-client munge"
        return f"SLURM is not installed (missing {', '.join(missing)}; apt-get install {packages})"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs its daemons as root; these tests run as a normal user"
    if not MUNGE_KEY.exists():
        return f"no munge key at {MUNGE_KEY}"
    return None


class LocalSlurmCluster:
    """One partition (`debug`) with one node: this host, with the CPUs and memory `slurmd -C` reports."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).resolve()
        self.config = self.directory / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.config)}
        self._daemons: list[subprocess.Popen] = []
        self._started_at = time.time()

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemons and wait until the node is idle; RuntimeError with the logs if it is not."""
        self._started_at = time.time()
        for sub in ("state", "spool", "log", "run"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._slurm_conf())
        run, log = self.directory / "run", self.directory / "log"
        self._spawn(
            "munged",
            "--foreground",
            "--force",
            f"--socket={run / 'munge.socket'}",
            f"--key-file={MUNGE_KEY}",
            f"--pid-file={run / 'munged.pid'}",
            f"--log-file={log / 'munged.log'}",
            f"--seed-file={run / 'munged.seed'}",
        )
        self._wait_for(lambda: (run / "munge.socket").exists(), timeout, "munged to open its socket")
        self._spawn("slurmctld", "-D", "-i", "-f", str(self.config))
        self._spawn("slurmd", "-D", "-f", str(self.config))
        self._wait_for(self._node_idle, timeout, "the node to become idle in sinfo")

    def stop(self) -> None:
        """Cancel every job, kill whatever the jobs left behind, stop the daemons (slurmd first) and wait
        for them, then remove the shared-memory segments the jobs' MPI ranks left in /dev/shm.

        A step that outlives its test (killed slurmstepd, MPI rank spinning in MPI_Init) otherwise keeps
        running into later tests and clusters, and its stale segments can stall later MPI starts.
        """
        if self._daemons:
            self.cancel_all()
        for pid in self._job_processes():
            _kill(pid)
        for daemon in reversed(self._daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in reversed(self._daemons):
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self._daemons = []
        self._remove_stale_segments()

    def cancel_all(self, timeout: float = 30.0) -> None:
        """Cancel every job of this cluster and wait (up to `timeout` s) until none is left running."""
        self.run("scancel", "--full", "--user=root", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.run("squeue", "-h", "-t", "PD,R,CG,S,CF", "-o", "%i", check=False)
            if listed.returncode != 0 or not listed.stdout.strip():
                break
            time.sleep(0.25)
        for pid in self._job_processes():
            _kill(pid)

    def _job_processes(self) -> list[int]:
        """Processes started by this cluster's jobs (they inherit SLURM_CONF pointing at our config), not
        the daemons, not this process."""
        marker = f"SLURM_CONF={self.config}".encode()
        daemons = {daemon.pid for daemon in self._daemons} | {os.getpid()}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in daemons:
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                command = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if marker in environ and command not in DAEMONS and "SLURM_JOB_ID" in str(environ):
                found.append(int(entry.name))
        return found

    def _remove_stale_segments(self) -> None:
        """Delete the MPI shared-memory files created while this cluster ran that no process still maps."""
        in_use = _mapped_shm_files()
        for path in Path("/dev/shm").glob("mpich_shm_*"):
            try:
                created_here = path.stat().st_mtime >= self._started_at
            except OSError:
                continue
            if created_here and path.name not in in_use:
                path.unlink(missing_ok=True)

    def __enter__(self) -> LocalSlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def run(
        self, *command: str, timeout: float = 60.0, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            command, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=check
        )

    def job_state(self, job_id: str) -> str:
        """The job's state as scontrol reports it (PENDING, RUNNING, COMPLETED, ...), "" when unknown."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        for field in result.stdout.split():
            if field.startswith("JobState="):
                return field.removeprefix("JobState=")
        return ""

    def wait_for_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120.0) -> str:
        """Wait until the job is in one of `states`; return the state."""
        self._wait_for(lambda: self.job_state(job_id) in states, timeout, f"job {job_id} to reach {states}")
        return self.job_state(job_id)

    def logs(self) -> str:
        """The tail of every daemon log, for failure messages."""
        parts = []
        for path in sorted((self.directory / "log").glob("*.log")):
            parts.append(
                f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
            )
        return "\n".join(parts)

    def _spawn(self, *command: str) -> None:
        self._daemons.append(
            subprocess.Popen(
                command,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def _node_idle(self) -> bool:
        for daemon in self._daemons:
            if daemon.poll() is not None:
                raise RuntimeError(f"{daemon.args[0]} exited with {daemon.returncode}\n{self.logs()}")
        result = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")
            time.sleep(0.2)

    def _slurm_conf(self) -> str:
        node = subprocess.run(
            ["slurmd", "-C"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
        host = node.split()[0].removeprefix("NodeName=")
        controller_port, node_port = _free_port(), _free_port()
        directory, run, log = self.directory, self.directory / "run", self.directory / "log"
        return f"""\
ClusterName=gridswarm-test
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={run / "munge.socket"},cred_expire=10
CredType=cred/munge
StateSaveLocation={directory / "state"}
SlurmdSpoolDir={directory / "spool"}/%n
SlurmctldPidFile={run / "slurmctld.pid"}
SlurmdPidFile={run / "slurmd.pid"}
SlurmctldLogFile={log / "slurmctld.log"}
SlurmdLogFile={log / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
JobRequeue=1
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
{node} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _mapped_shm_files() -> set[str]:
    """Names of the /dev/shm files some process has mapped or open."""
    names = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            maps = (entry / "maps").read_text(errors="replace")
        except OSError:
            continue
        names.update(
            line.rsplit("/dev/shm/", 1)[1].split()[0] for line in maps.splitlines() if "/dev/shm/" in line
        )
    return names


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
