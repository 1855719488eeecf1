"""Capture and restore every random number generator a run draws from, for an exact resume.

torch's states are byte tensors (they go into a checkpoint's tensors); numpy Generators' and python
`random`'s states are JSON (they go into its metadata). numpy arrays inside a bit generator's state
(MT19937's key, Philox's counter) are written as {"ndarray": [...], "dtype": "..."}.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hpc.errors import HpcError


def capture_rng(generators: Mapping[str, np.random.Generator] | None = None) -> tuple[dict, dict]:
    """(tensors, meta) holding the states of torch (CPU and every CUDA device), python `random`, numpy's
    legacy global generator and the given named numpy Generators."""
    tensors: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    version, mt_state, gauss_next = random.getstate()
    meta = {
        "python": {"version": version, "state": list(mt_state), "gauss_next": gauss_next},
        "numpy_global": _to_json(np.random.get_state(legacy=False)),
        "numpy": {name: _to_json(gen.bit_generator.state) for name, gen in (generators or {}).items()},
    }
    return tensors, meta


def restore_rng(
    tensors: Mapping[str, Any],
    meta: Mapping[str, Any],
    generators: Mapping[str, np.random.Generator] | None = None,
) -> None:
    """Put every generator back into the state `capture_rng` recorded; the named numpy Generators are
    restored in place and must be the ones that were captured."""
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["torch_cuda"])
    python = meta["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    np.random.set_state(_from_json(meta["numpy_global"]))
    saved = meta["numpy"]
    for name, generator in (generators or {}).items():
        if name not in saved:
            raise HpcError(f"no saved state for numpy generator {name!r}; the checkpoint has {sorted(saved)}")
        generator.bit_generator.state = _from_json(saved[name])


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"ndarray", "dtype"}:
            return np.array(value["ndarray"], dtype=np.dtype(value["dtype"]))
        return {key: _from_json(item) for key, item in value.items()}
    return value
