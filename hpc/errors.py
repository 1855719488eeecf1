"""Errors of the cluster runtime that carry a message for the user."""


class HpcError(Exception):
    """A problem with the MPI world, a checkpoint, a SLURM setting or a job, told in one line."""
