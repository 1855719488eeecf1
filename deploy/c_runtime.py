"""The C99 sources the exporter copies into policy.c: kernels (only the ones a policy uses) and the radio.

They are package files, `deploy/runtime/gs_<name>.c`, each a translation unit a C compiler accepts on its
own (with the generated policy.h for the radio). Conventions of every kernel: float only (f literals,
expf/sqrtf/tanhf/erff), no allocation, no recursion, row-major contiguous outputs written into caller-owned
buffers; inputs may be strided views (explicit element strides) so transposes and broadcasts cost no copy.
Booleans are floats 0.0f / 1.0f.
"""

from __future__ import annotations

from importlib import resources

KERNEL_NAMES = ("matmul", "matmul_q8", "conv2d", "softmax", "layer_norm", "reduce")


def runtime_source(name: str) -> str:
    """The body of deploy/runtime/gs_<name>.c as it goes into policy.c: without its #include lines."""
    text = (resources.files("deploy") / "runtime" / f"gs_{name}.c").read_text(encoding="utf-8")
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#include"))


KERNELS: dict[str, str] = {name: runtime_source(name) for name in KERNEL_NAMES}
