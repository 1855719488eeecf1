"""int8 weights with one scale per output row, rounded with calibration data (GPTQ) or to the nearest step.

Round-to-nearest treats every weight alike. GPTQ (Frantar et al., "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers", ICLR 2023) rounds the input columns of a layer one at
a time and moves each column's rounding error onto the columns not yet rounded, weighted by the inverse of
H = X^T X, the second moment of the layer's inputs X over calibration data: the layer's outputs on inputs
like X change as little as the int8 grid allows. The calibration inputs are the observations a policy meets
in its scenario (a rollout) and the memories its own recurrence produces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deploy.agent import AgentStep

DAMPING = 0.01  # added to H's diagonal, as a fraction of its mean: keeps the inverse well conditioned


def quantize_rows(matrix: np.ndarray, hessian: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: (R, K) float -> int8 (R, K) in [-127, 127], scale (R,) float32, so that
    matrix ~= q * scale[:, None]; rounded to nearest, or by GPTQ given the inputs' `hessian` (K, K)."""
    matrix = np.asarray(matrix, np.float32)
    peak = np.abs(matrix).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    if hessian is None:
        return np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8), scale
    return _gptq(matrix.astype(np.float64), np.asarray(hessian, np.float64), scale.astype(np.float64)), scale


def _gptq(weights: np.ndarray, hessian: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The GPTQ column sweep with fixed per-row scales; weights (R, K), hessian (K, K), scale (R,)."""
    hessian = hessian.copy()
    unused = np.diag(hessian) == 0  # inputs that were always zero: rounded to nearest, nothing to move
    hessian[unused, unused] = 1.0
    hessian[np.diag_indices_from(hessian)] += DAMPING * np.mean(np.diag(hessian))
    # upper Cholesky factor of H^-1: row k holds how column k's error is spread onto the columns after it
    inverse = np.linalg.cholesky(np.linalg.inv(hessian)).T
    weights = weights.copy()
    q = np.empty(weights.shape, np.int8)
    for k in range(weights.shape[1]):
        column = np.clip(np.rint(weights[:, k] / scale), -127, 127)
        q[:, k] = column
        error = (weights[:, k] - column * scale) / inverse[k, k]  # (R,)
        weights[:, k + 1 :] -= np.outer(error, inverse[k, k + 1 :])
    return q


def layer_hessians(step: AgentStep, samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """H = X^T X of the inputs of every Linear and Conv2d of `step` over `samples` (batch-1 input sets), by
    the module's dotted path; a convolution's rows are its input patches in weight order (C, KH, KW)."""
    moments: dict[str, np.ndarray] = {}

    def record(path: str, module: nn.Module):
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            x = args[0].detach().to(torch.float64)
            if isinstance(module, nn.Conv2d):
                patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
                rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])  # (B*L, C*KH*KW)
                if module.groups != 1:
                    return  # grouped convolutions are rounded to nearest
            else:
                rows = x.reshape(-1, x.shape[-1])
            moment = (rows.T @ rows).numpy()
            moments[path] = moments.get(path, 0.0) + moment

        return hook

    handles = [
        module.register_forward_hook(record(path, module))
        for path, module in step.named_modules()
        if isinstance(module, nn.Linear | nn.Conv2d)
    ]
    try:
        batch = {name: np.concatenate([np.asarray(s[name]) for s in samples]) for name in samples[0]}
        with torch.no_grad():
            step(**{k: torch.from_numpy(v) for k, v in batch.items() if k not in step.output_names})
    finally:
        for handle in handles:
            handle.remove()
    return moments
