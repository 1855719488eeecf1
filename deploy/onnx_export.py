"""policy.onnx: one agent's step through torch's ONNX exporter, checked, and run by ONNX Runtime."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from deploy.agent import AgentStep
from optdeps import require

ONNX_OPSET = 17
ONNX_PURPOSE = "policy.onnx (--format c leaves it out)"
"""What asks for onnx and onnxruntime (the `export` extra) in a missing-package message."""


def require_onnx() -> None:
    """Check, before anything is written, that onnx and onnxruntime import; `optdeps.MissingPackageError`
    naming the `export` extra's pip install when either does not."""
    require("onnx", "export", ONNX_PURPOSE)
    require("onnxruntime", "export", ONNX_PURPOSE)


def onnx_bytes(step: AgentStep, inputs: dict[str, torch.Tensor]) -> bytes:
    """The step as an ONNX model (opset ONNX_OPSET, batch 1, static shapes) that passes the full checker."""
    onnx = require("onnx", "export", ONNX_PURPOSE)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on shape checks in Python are expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            (),
            buffer,
            kwargs=inputs,
            input_names=list(inputs),
            output_names=step.output_names,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model, full_check=True)
    return buffer.getvalue()


def onnx_runner(model: bytes, output_names: Sequence[str]) -> Callable[[dict], list[np.ndarray]]:
    """inputs by name -> outputs, through an ONNX Runtime CPU session."""
    onnxruntime = require("onnxruntime", "export", ONNX_PURPOSE)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(list(output_names), {n: np.asarray(inputs[n]) for n in names})
