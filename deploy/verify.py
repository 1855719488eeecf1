"""The verification ladder run on every export: torch vs ONNX Runtime vs compiled C.

Inputs come from recorded observations when given (rollouts), otherwise random binary observation planes;
memories, histories and messages are drawn from the policy's own recurrence so they have realistic scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from deploy.agent import AgentStep, MessageEncoder
from deploy.cbuild import CFunction
from deploy.errors import ExportError
from deploy.onnx_export import onnx_runner

if TYPE_CHECKING:
    from deploy.export import ExportOptions

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
NEAR_TIE = 1e-4  # top-2 logit margin under which a different argmax is not a disagreement


@dataclass(frozen=True)
class Agreement:
    """How closely a runner matches torch over a set of inputs."""

    samples: int
    max_abs_error: float
    same_action: float  # fraction of samples with the same argmax
    same_action_outside_ties: float  # the same, counting only samples whose torch top-2 margin > NEAR_TIE

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "max_abs_error": self.max_abs_error,
            "same_action": self.same_action,
            "same_action_outside_ties": self.same_action_outside_ties,
        }


CHAIN_LENGTH = 10  # steps of each sampled recurrence
# the input streams an export draws, each its own seed: ExportOptions.seed plus the purpose's offset
INPUT_SEED_OFFSETS = {
    "golden": 1,
    "verify": 2,
    "drift": 3,
    "mcu_recurrence": 4,
    "int8_calibration": 5,
    "int8_selection": 6,
}


def input_seed(seed: int, purpose: str) -> int:
    """The seed of the export's input stream `purpose` (a key of INPUT_SEED_OFFSETS)."""
    return seed + INPUT_SEED_OFFSETS[purpose]


def torch_batch(step: AgentStep, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The torch outputs for a batch of inputs (B, ...) in one call."""
    with torch.no_grad():
        outputs = step(
            **{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items() if k not in step.output_names}
        )
    return [o.numpy() for o in outputs]


def torch_runner(step: AgentStep) -> Runner:
    return lambda inputs: torch_batch(step, inputs)


def stack(samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batch-1 input sets -> one batch (B, ...)."""
    return {name: np.concatenate([np.asarray(s[name]) for s in samples]) for name in samples[0]}


def sample_inputs(
    step: AgentStep, count: int, seed: int, observations: np.ndarray | None = None
) -> list[dict[str, np.ndarray]]:
    """`count` batch-1 input sets from parallel chains of CHAIN_LENGTH torch steps: observations cycled from
    `observations` (or random planes), states from the chain's recurrence, 0..K valid message slots (SRMT
    messages near the agent's own memory, as neighbours' memories are), a reset in about one step in ten."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    chains = max(1, -(-count // CHAIN_LENGTH))
    samples: list[dict[str, np.ndarray]] = []
    state: list[np.ndarray] = []
    for t in range(CHAIN_LENGTH):
        batch = {k: v.numpy() for k, v in step.example_inputs(generator, chains).items()}
        if observations is not None:
            index = (t * chains + np.arange(chains)) % len(observations)
            batch["obs"] = np.asarray(observations, np.float32)[index]
        batch["reset"] = np.full(chains, True) if t == 0 else rng.random(chains) < 0.1
        for (name, _), value in zip(step.state_names, state, strict=False):
            batch[name] = value
        if "message_mask" in batch:
            batch["message_mask"] = np.arange(step.max_neighbours) < rng.integers(
                0, step.max_neighbours + 1, (chains, 1)
            )
            if state and step.message_source == "memory":
                noise = 0.3 * rng.standard_normal(batch["messages"].shape).astype(np.float32)
                batch["messages"] = state[0][:, None, :] + noise
        state = torch_batch(step, batch)[1:]
        samples += [{k: v[i : i + 1] for k, v in batch.items()} for i in range(chains)]
    return samples[:count]


def compare(step: AgentStep, runner: Runner, samples: Sequence[dict[str, np.ndarray]]) -> Agreement:
    expected_batch = torch_batch(step, stack(samples))
    worst, same, same_clear, clear = 0.0, 0, 0, 0
    for index, inputs in enumerate(samples):
        expected = [e[index : index + 1] for e in expected_batch]
        found = runner(inputs)
        for e, f in zip(expected, found, strict=True):
            if e.size:
                worst = max(worst, float(np.abs(np.asarray(f).reshape(e.shape) - e).max()))
        logits = expected[0].ravel()
        agree = int(np.argmax(np.asarray(found[0]).ravel()) == np.argmax(logits))
        same += agree
        top2 = np.sort(logits)[-2:]
        if top2[1] - top2[0] > NEAR_TIE:
            clear += 1
            same_clear += agree
    return Agreement(len(samples), worst, same / len(samples), same_clear / max(clear, 1))


def recurrent_drift(
    step: AgentStep, runner: Runner, steps: int, seed: int, observations: np.ndarray | None = None
) -> float:
    """Largest state difference after feeding each runner's own new state back for `steps` steps."""
    if not step.state_names:
        return 0.0
    samples = sample_inputs(step, steps, seed, observations)
    reference = torch_runner(step)
    torch_state = c_state = None
    worst = 0.0
    for index, inputs in enumerate(samples):
        inputs = {**inputs, "reset": np.array([index == 0])}
        if "message_mask" in inputs:
            inputs["message_mask"] = np.zeros_like(inputs["message_mask"])  # alone: only its own recurrence
        torch_in, c_in = dict(inputs), dict(inputs)
        for position, (name, _) in enumerate(step.state_names):
            if torch_state is not None:
                torch_in[name], c_in[name] = torch_state[position], c_state[position]
        torch_state = reference(torch_in)[1:]
        c_state = [np.asarray(s).reshape(t.shape) for s, t in zip(runner(c_in)[1:], torch_state, strict=True)]
        worst = max(
            worst, *(float(np.abs(t - c).max(initial=0.0)) for t, c in zip(torch_state, c_state, strict=True))
        )
    return worst


def c_runner(function: CFunction) -> Runner:
    """A compiled function as a runner: inputs by name, in the function's argument order."""
    return lambda inputs: function(*[inputs[spec.name] for spec in function.inputs])


def encoder_runner(encoder: MessageEncoder) -> Runner:
    """The torch message encoder as a runner of {"obs": ...}."""

    def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return [encoder(torch.from_numpy(np.asarray(inputs["obs"])))[0].numpy()]

    return run


def check_export(
    step: AgentStep,
    library: CFunction,
    onnx_model: bytes | None,
    options: ExportOptions,
    observations: np.ndarray | None,
    golden: list[dict],
) -> dict:
    """The host checks of an export: C (and ONNX Runtime) against torch on the golden vectors and on
    options.verify_samples inputs, the C recurrence (float32), the int8 agreement; ExportError on a miss."""
    samples = sample_inputs(step, options.verify_samples, input_seed(options.seed, "verify"), observations)
    c_run = c_runner(library)
    report = {
        "inputs": "recorded observations" if observations is not None else "random observation planes",
        "c_golden": compare(step, c_run, golden).to_dict(),
        "c": compare(step, c_run, samples).to_dict(),
    }
    if onnx_model is not None:
        onnx_run = onnx_runner(onnx_model, step.output_names)
        report["onnx"] = compare(step, onnx_run, samples).to_dict()
        if report["onnx"]["max_abs_error"] > options.fp32_tolerance:
            raise ExportError(
                f"ONNX Runtime differs from torch by {report['onnx']['max_abs_error']:.2e}, over "
                f"{options.fp32_tolerance:.0e}"
            )
    c = Agreement(**report["c"])
    if options.int8:
        if c.same_action < options.int8_min_agreement:
            mine = "" if observations is not None else "--scenario NAME (the policy's own observations), "
            raise ExportError(
                f"int8 C picks the torch action in {100 * c.same_action:.2f}% of {c.samples} samples, under "
                f"{100 * options.int8_min_agreement:.0f}%; try {mine}more --verify-samples (a choice between "
                "nearly tied actions flips under any rounding), or float32 weights (without --int8)"
            )
    else:
        if c.max_abs_error > options.fp32_tolerance:
            raise ExportError(
                f"C differs from torch by {c.max_abs_error:.2e}, over {options.fp32_tolerance:.0e}"
            )
        if c.same_action_outside_ties < 1.0:
            raise ExportError("C picks another action than torch outside near-ties")
        drift_seed = input_seed(options.seed, "drift")
        drift = recurrent_drift(step, c_run, options.drift_steps, drift_seed, observations)
        report["c_recurrent_drift"] = {"steps": options.drift_steps, "max_abs_error": drift}
        if drift > options.drift_tolerance:
            raise ExportError(f"C state drifts {drift:.2e} from torch over {options.drift_steps} steps")
    return report


def check_message_encoder(
    encoder: MessageEncoder, function: CFunction, golden: list[dict], options: ExportOptions
) -> dict:
    """The C message encoder against torch on the golden observations."""
    worst = 0.0
    for inputs in golden:
        with torch.no_grad():
            (expected,) = encoder(torch.from_numpy(inputs["obs"]))
        worst = max(worst, float(np.abs(function(inputs["obs"])[0] - expected.numpy()).max()))
    if not options.int8 and worst > options.fp32_tolerance:
        raise ExportError(
            f"the C message encoder differs from torch by {worst:.2e}, over {options.fp32_tolerance:.0e}"
        )
    return {"samples": len(golden), "max_abs_error": worst}
