"""numba kernels of the simulator: small `@njit(cache=True)` functions over arrays that write into
caller-owned buffers. `rng` (numpy-exact PCG64 streams), `tasks` (components, placement, lifelong goals),
`dynamics` (collision systems, goals, rewards), `observe` (observation windows, with `lanes`' vector
copies), `metrics` (POGEMA's episode metrics), `step` (one step of a batch) over `state` (its buffers as
one StructRef)."""
