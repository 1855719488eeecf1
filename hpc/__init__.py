"""The cluster runtime: MPI data parallelism, checkpoints, preemption, SLURM. Imports nothing else of GridSwarm."""
