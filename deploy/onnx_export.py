"""policy.onnx: one agent's step through torch's ONNX exporter, checked, and run by ONNX Runtime."""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from deploy.agent import AgentStep
from deploy.errors import ExportError

ONNX_OPSET = 17
# The `export` extra of pyproject.toml: what `--format onnx` needs beyond the base install.
INSTALL = "pip install 'onnx>=1.15' 'onnxruntime>=1.17'"


def require_onnx() -> None:
    """ExportError naming the pip install that adds onnx and onnxruntime when either is missing."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"policy.onnx needs the {' and '.join(missing)} package{'s' * (len(missing) > 1)}: {INSTALL} "
            "(or leave ONNX out with --format c)"
        )


def onnx_bytes(step: AgentStep, inputs: dict[str, torch.Tensor]) -> bytes:
    """The step as an ONNX model (opset ONNX_OPSET, batch 1, static shapes) that passes the full checker."""
    import onnx

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
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(list(output_names), {n: np.asarray(inputs[n]) for n in names})
