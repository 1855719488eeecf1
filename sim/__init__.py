"""The GridSwarm simulator: a POGEMA-exact, numba-batched grid world (numpy + numba only)."""
