"""How big a scenario may be: every bound is checked before anything of that size is allocated or built,
and a value past one is refused with one line naming the key, the value and the limit."""

MAX_SIDE = 16_384
"""Rows or columns of any map (generated, ASCII or read from a file)."""
MAX_CELLS = 1 << 26
"""Cells of any map (8192 x 8192): an environment holds ~35 bytes of buffers per cell."""
MAX_FILE_BYTES = 256 << 20
"""A scenario, map, .scen or maps.yaml file (an 8192 x 8192 .map is 64 MiB)."""
MAX_YAML_NODES = 1_000_000
"""Values a scenario's YAML may hold once its aliases are expanded (refused before they are)."""
MAX_VARIANTS = 10_000
"""Variants of one curriculum, all ranges together."""
MAX_NEIGHBOURS = 1024
"""observation.neighbours: agents listed per agent."""
MAX_NEIGHBOUR_RADIUS = 2.0 * MAX_SIDE
"""observation.neighbour_radius: beyond a map's diagonal a larger radius changes nothing."""
MAX_EPISODE_STEPS = 2**31 - 1
"""dynamics.max_episode_steps (step counters and metrics are 64-bit; POGEMA's are unbounded ints)."""
MAX_PATTERN_CHARACTERS = 256
"""map.name, the glob over a benchmark file's map names."""
