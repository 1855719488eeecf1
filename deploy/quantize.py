"""int8 weights with one scale per output row, rounded with calibration data (GPTQ) or to the nearest step.

Round-to-nearest treats every weight alike. GPTQ (Frantar et al., "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers", ICLR 2023) rounds the input columns of a layer one at
a time and moves each column's rounding error onto the columns not yet rounded, weighted by the inverse of
H = X^T X, the second moment of the layer's inputs X over calibration data: the layer's outputs on inputs
like X change as little as the int8 grid allows. The calibration inputs are the observations a policy meets
in its scenario (a rollout) and the memories its own recurrence produces. Where int8 weights still change the
policy's choices too often, the layers that cost the most agreement per byte stay in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    scales = np.broadcast_to(
        scale.reshape(len(scale), -1), weights.shape
    )  # one per row, or per row and column
    for k in range(weights.shape[1]):
        column = np.clip(np.rint(weights[:, k] / scales[:, k]), -127, 127)
        q[:, k] = column
        error = (weights[:, k] - column * scales[:, k]) / inverse[k, k]  # (R,)
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


@dataclass(frozen=True)
class Int8Plan:
    """How the int8 weights are made: GPTQ moments per layer, and the layers kept in float32."""

    hessians: dict[str, np.ndarray]
    float_modules: tuple[str, ...]
    agreement: float  # argmax agreement with the float32 policy on the selection samples, as planned
    calibration_samples: int
    selection_samples: int


def plan_int8(
    step: AgentStep,
    calibration: Sequence[dict[str, np.ndarray]],
    selection: Sequence[dict[str, np.ndarray]],
    target: float,
) -> Int8Plan:
    """GPTQ-round every Linear and Conv2d on `calibration`; while the int8 policy picks the float policy's
    action in fewer than `target` of the `selection` samples, keep in float32 the layer whose int8 error moves
    the logits most per byte it adds (a layer's error measured with it alone in int8)."""
    hessians = layer_hessians(step, calibration)
    layers = {
        path: module
        for path, module in step.named_modules()
        if isinstance(module, nn.Linear | nn.Conv2d) and path in hessians
    }
    original = {path: module.weight.detach().clone() for path, module in layers.items()}
    rounded = {}
    for path in layers:
        matrix = original[path].reshape(len(original[path]), -1).numpy()
        q, scale = quantize_rows(matrix, hessians[path])
        rounded[path] = torch.from_numpy(q.astype(np.float32) * scale[:, None]).reshape(original[path].shape)
    batch = {k: torch.from_numpy(np.concatenate([np.asarray(s[k]) for s in selection])) for k in selection[0]}
    inputs = {k: v for k, v in batch.items() if k not in step.output_names}

    def logits(int8_layers: set[str]) -> torch.Tensor:
        try:
            with torch.no_grad():
                for path, module in layers.items():
                    module.weight.copy_(rounded[path] if path in int8_layers else original[path])
                return step(**inputs)[0]
        finally:
            with torch.no_grad():
                for path, module in layers.items():
                    module.weight.copy_(original[path])

    expected = logits(set())
    chosen = expected.argmax(dim=1)

    def agreement(int8_layers: set[str]) -> float:
        return float((logits(int8_layers).argmax(dim=1) == chosen).float().mean())

    kept: list[str] = []
    current = agreement(set(layers))
    if current < target:
        damage = {path: float((logits({path}) - expected).abs().mean()) for path in layers}
        for path in sorted(layers, key=lambda p: damage[p] / original[p].numel(), reverse=True):
            kept.append(path)
            current = agreement(set(layers) - set(kept))
            if current >= target:
                break
    return Int8Plan(hessians, tuple(kept), current, len(calibration), len(selection))
