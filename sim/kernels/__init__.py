"""numba kernels of the simulator: small `@njit(cache=True)` functions over arrays that write into
caller-owned buffers. `rng` (numpy-exact PCG64 streams), `tasks` (components, placement, lifelong goals),
`dynamics` (collision systems, goals, rewards), `observe` (observation windows), `metrics` (POGEMA's
episode metrics)."""
