"""Export a trained swarm policy: policy.onnx, policy.c/.h, golden.npz, manifest.json and waypoint plans.

Everything is written into a temporary directory next to the destination, verified (torch vs ONNX Runtime
vs the compiled C), hashed, fsynced and only then renamed into place: a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from deploy.agent import AgentStep, MessageEncoder
from deploy.cbuild import CFunction, build
from deploy.ccompile import CProgram, compile_module, weight_bytes
from deploy.csource import render_header, render_source
from deploy.errors import BudgetError, ExportError
from deploy.radio import message_format
from deploy.verify import Agreement, compare, recurrent_drift, sample_inputs, torch_runner
from deploy.waypoints import WaypointPlan, plan_files
from fsio import fsync_directory, read_bounded
from memory import SwarmPolicy

FORMATS = ("onnx", "c", "waypoints")
ONNX_OPSET = 17
ACTIONS = [["stay", 0, 0], ["up", -1, 0], ["down", 1, 0], ["left", 0, -1], ["right", 0, 1]]
POGEMA_CHANNELS = ("obstacles", "agents", "goal")


@dataclass(frozen=True)
class Budget:
    """Limits of a target and the cost model of its time estimate (research/export.md §5-6)."""

    target: str
    max_weight_bytes: int
    max_weight_bytes_int8: int
    max_ram_bytes: int
    min_rate_hz: float
    clock_hz: float = 168e6
    cycles_per_mac: float = 7.5  # naive fp32 C at -O2 on a Cortex-M4F, emulated upper estimate
    cycles_per_mac_int8: float = 9.5
    cycles_per_elementwise: float = 5.0
    cycles_per_transcendental: float = 60.0


CRAZYFLIE = Budget("crazyflie-stm32f405", 64 * 1024, 16 * 1024, 16 * 1024, 10.0)


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how to check it."""

    formats: tuple[str, ...] = ("onnx", "c")
    int8: bool = False
    max_neighbours: int = 8
    budget: Budget | None = CRAZYFLIE
    verify_samples: int = 1000
    drift_steps: int = 50
    golden_vectors: int = 8
    embedded_golden: int = 2
    seed: int = 0
    overwrite: bool = False
    protected: tuple[str, ...] = ()  # paths an overwrite must never delete (the source checkpoint)
    fp32_tolerance: float = 1e-5
    drift_tolerance: float = 1e-4
    int8_min_agreement: float = 0.99
    extra: dict = field(default_factory=dict)  # merged into the manifest (source, scenario, ...)


def measure(programs: Sequence[CProgram], int8: bool, budget: Budget) -> dict:
    """Sizes and the estimated time of one decision (every compiled function once) on the budget's target."""
    io_floats = sum(spec.numel for p in programs for spec in p.inputs + p.outputs)
    arena = sum(p.arena_floats for p in programs)
    macs = sum(p.macs for p in programs)
    elementwise = sum(p.elementwise_ops for p in programs)
    transcendental = sum(p.transcendental_ops for p in programs)
    cycles = (
        macs * (budget.cycles_per_mac_int8 if int8 else budget.cycles_per_mac)
        + elementwise * budget.cycles_per_elementwise
        + transcendental * budget.cycles_per_transcendental
    )
    seconds = cycles / budget.clock_hz
    return {
        "weight_bytes": weight_bytes(programs),
        "activation_bytes": 4 * arena,
        "io_bytes": 4 * io_floats,
        "ram_bytes": 4 * (arena + io_floats),
        "macs": macs,
        "elementwise_ops": elementwise,
        "transcendental_ops": transcendental,
        "estimated_cycles": int(cycles),
        "estimated_ms": 1e3 * seconds,
        "estimated_rate_hz": 1.0 / seconds if seconds else float("inf"),
    }


def check_budget(measured: dict, budget: Budget, int8: bool, max_neighbours: int) -> None:
    weight_limit = budget.max_weight_bytes_int8 if int8 else budget.max_weight_bytes
    kind = "int8" if int8 else "float"
    if measured["weight_bytes"] > weight_limit:
        hint = "" if int8 else "; try --int8"
        raise BudgetError(
            f"{kind} weights take {measured['weight_bytes']} B, over the {budget.target} budget "
            f"of {weight_limit} B{hint}"
        )
    if measured["ram_bytes"] > budget.max_ram_bytes:
        raise BudgetError(
            f"activations and state take {measured['ram_bytes']} B of RAM, over the "
            f"{budget.target} budget of {budget.max_ram_bytes} B"
        )
    if measured["estimated_rate_hz"] < budget.min_rate_hz:
        raise BudgetError(
            f"estimated {measured['estimated_rate_hz']:.1f} Hz ({measured['macs']} MACs with "
            f"{max_neighbours} neighbours) on {budget.target}, under the budget of "
            f"{budget.min_rate_hz} Hz"
        )


def golden_inputs(step: AgentStep, count: int, seed: int, observations: np.ndarray | None) -> list[dict]:
    """Golden vectors: the first starts an episode alone (reset, no neighbours), the second has every
    neighbour slot filled, the rest come from the sampled recurrence."""
    samples = sample_inputs(step, max(count, 2), seed + 1, observations)
    samples[0] = {**samples[0], "reset": np.array([True])}
    for name, _ in step.state_names:
        samples[0][name] = np.zeros_like(samples[0][name])
    if "message_mask" in samples[0]:
        samples[0]["message_mask"] = np.zeros_like(samples[0]["message_mask"])
        samples[1] = {
            **samples[1],
            "message_mask": np.ones_like(samples[1]["message_mask"]),
            "reset": np.array([False]),
        }
    return samples[:count]


def _with_outputs(step: AgentStep, samples: list[dict]) -> list[dict[str, np.ndarray]]:
    run = torch_runner(step)
    return [{**inputs, **dict(zip(step.output_names, run(inputs), strict=True))} for inputs in samples]


def _onnx_bytes(step: AgentStep, inputs: dict[str, torch.Tensor]) -> bytes:
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


def _onnx_runner(model: bytes, output_names: Sequence[str]):
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(list(output_names), {n: np.asarray(inputs[n]) for n in names})


def _c_runner(function: CFunction):
    return lambda inputs: function(*[inputs[spec.name] for spec in function.inputs])


def _banner(step: AgentStep, measured: dict, int8: bool) -> str:
    config = step.policy.config
    return (
        f"GridSwarm policy export: {config.name}, obs {config.obs_shape}, width {config.width}\n"
        f"weights {'int8 per-row' if int8 else 'float32'}: {measured['weight_bytes']} B, "
        f"RAM {measured['ram_bytes']} B, {measured['macs']} MACs per step\n"
        f"generated {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} "
        f"by torch {torch.__version__}; C99, float only, no malloc\n"
    )


def _verify(
    step: AgentStep,
    library: CFunction,
    onnx_model: bytes | None,
    options: ExportOptions,
    observations: np.ndarray | None,
    golden: list[dict],
) -> dict:
    samples = sample_inputs(step, options.verify_samples, options.seed + 2, observations)
    c_run = _c_runner(library)
    report = {
        "inputs": "recorded observations" if observations is not None else "random observation planes",
        "c_golden": compare(step, c_run, golden).to_dict(),
        "c": compare(step, c_run, samples).to_dict(),
    }
    if onnx_model is not None:
        onnx_run = _onnx_runner(onnx_model, step.output_names)
        report["onnx"] = compare(step, onnx_run, samples).to_dict()
        if report["onnx"]["max_abs_error"] > options.fp32_tolerance:
            raise ExportError(
                f"ONNX Runtime differs from torch by {report['onnx']['max_abs_error']:.2e}, over "
                f"{options.fp32_tolerance:.0e}"
            )
    c = Agreement(**report["c"])
    if options.int8:
        if c.same_action < options.int8_min_agreement:
            raise ExportError(
                f"int8 C picks the torch action in {100 * c.same_action:.2f}% of samples, under "
                f"{100 * options.int8_min_agreement:.0f}%"
            )
    else:
        if c.max_abs_error > options.fp32_tolerance:
            raise ExportError(
                f"C differs from torch by {c.max_abs_error:.2e}, over {options.fp32_tolerance:.0e}"
            )
        if c.same_action_outside_ties < 1.0:
            raise ExportError("C picks another action than torch outside near-ties")
        drift = recurrent_drift(step, c_run, options.drift_steps, options.seed + 3, observations)
        report["c_recurrent_drift"] = {"steps": options.drift_steps, "max_abs_error": drift}
        if drift > options.drift_tolerance:
            raise ExportError(f"C state drifts {drift:.2e} from torch over {options.drift_steps} steps")
    return report


def _verify_message(
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


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


EXPORT_FORMAT_PREFIX = "gridswarm-export-"
MAX_MANIFEST_BYTES = 16 << 20


def prepare_destination(
    destination: Path, overwrite: bool, protected: Sequence[str | os.PathLike] = ()
) -> None:
    """Check that an export may be installed at `destination`; ExportError (one line) if not.

    A path that does not exist is fine. An existing one is replaced only with `overwrite`, and only if it
    is an earlier export: a directory (not a symbolic link) whose manifest.json is an export manifest and
    which holds nothing but the files that manifest lists. Never a directory that holds a `protected` path
    (the source checkpoint) or the working directory.
    """
    if destination.is_symlink():
        raise ExportError(f"{destination} is a symbolic link; name the export directory itself")
    if not destination.exists():
        return
    if not overwrite:
        raise ExportError(f"{destination} already exists (--force replaces an earlier export directory)")
    if not destination.is_dir():
        raise ExportError(
            f"{destination} is not a directory; --force replaces only an earlier export directory"
        )
    resolved = destination.resolve()
    for path, what in [
        *((Path(p), "the source checkpoint") for p in protected),
        (Path.cwd(), "the working directory"),
    ]:
        if path.resolve() == resolved or resolved in path.resolve().parents:
            raise ExportError(f"{destination} holds {what} ({path}); --force never replaces it")
    listed = _exported_files(destination)
    for root, directories, names in os.walk(destination):
        for name in [*directories, *names]:
            relative = (Path(root) / name).relative_to(destination).as_posix()
            owned = relative in listed or any(file.startswith(relative + "/") for file in listed)
            if not owned:
                raise ExportError(
                    f"{destination} holds {relative!r}, which no export wrote; --force replaces only a "
                    "directory with nothing but an earlier export's files"
                )


def _exported_files(directory: Path) -> set[str]:
    """The files (relative, POSIX) an earlier export's manifest lists, manifest.json included."""
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(read_bounded(manifest_path, MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        manifest = None
    valid = (
        isinstance(manifest, dict)
        and str(manifest.get("format", "")).startswith(EXPORT_FORMAT_PREFIX)
        and isinstance(manifest.get("files"), dict)
    )
    if not valid:
        raise ExportError(
            f"{directory} holds no manifest.json of an earlier export; "
            "--force replaces only export directories"
        )
    return {*manifest["files"], "manifest.json"}


def _install(staging: Path, destination: Path, options: ExportOptions) -> None:
    """Rename the finished staging directory to `destination`, replacing an earlier export (see
    `prepare_destination`)."""
    fsync_directory(staging.parent)
    prepare_destination(destination, options.overwrite, options.protected)
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old.{os.getpid()}")
        os.rename(destination, old)
        os.rename(staging, destination)
        shutil.rmtree(old)
    else:
        os.rename(staging, destination)


def export_policy(
    policy: SwarmPolicy,
    out_dir: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    observations: np.ndarray | None = None,
    plan: WaypointPlan | None = None,
    plan_summary: dict | None = None,
    channels: Sequence[str] | None = None,
) -> dict:
    """Export `policy` into `out_dir` (must not exist unless options.overwrite); returns the manifest.

    observations: (S, C, F, F) recorded from rollouts, used for the verification and golden vectors.
    Raises UnsupportedOpError / BudgetError / ExportError with one-line messages; writes nothing then.
    """
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise ExportError(f"unknown format {sorted(unknown)[0]!r}: expected some of {', '.join(FORMATS)}")
    if "waypoints" in options.formats and plan is None:
        raise ExportError("format 'waypoints' needs an episode, positions file or rollout to plan from")
    destination = Path(out_dir).absolute()
    prepare_destination(destination, options.overwrite, options.protected)
    step = AgentStep(policy, options.max_neighbours)
    generator = torch.Generator().manual_seed(options.seed)
    example = step.example_inputs(generator)
    programs = [compile_module(step, example, step.output_names, int8=options.int8)]
    encoder = MessageEncoder(policy) if step.message_source == "encoding" else None
    if encoder is not None:
        programs.append(
            compile_module(
                encoder, {"obs": example["obs"]}, ["message"], function="gs_policy_message", int8=options.int8
            )
        )
    program = programs[0]
    budget = options.budget or replace(CRAZYFLIE, target="none (host)")
    measured = measure(programs, options.int8, budget)
    if options.budget is not None:
        check_budget(measured, options.budget, options.int8, options.max_neighbours)
    golden = _with_outputs(step, golden_inputs(step, options.golden_vectors, options.seed, observations))
    banner = _banner(step, measured, options.int8)
    files = {
        "policy.h": render_header(programs, step, banner).encode(),
        "policy.c": render_source(programs, step, golden[: options.embedded_golden], banner).encode(),
    }
    onnx_model = None
    if "onnx" in options.formats:
        onnx_model = _onnx_bytes(
            step,
            {k: torch.from_numpy(np.asarray(v)) for k, v in golden[0].items() if k not in step.output_names},
        )
        files["policy.onnx"] = onnx_model
    npz = io.BytesIO()
    np.savez(npz, **{name: np.concatenate([g[name] for g in golden]) for name in golden[0]})
    files["golden.npz"] = npz.getvalue()
    if plan is not None:
        files.update({f"waypoints/{name}": text.encode() for name, text in plan_files(plan).items()})
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would make the export private to its writer
    try:
        with tempfile.TemporaryDirectory(prefix="gridswarm-cbuild-") as build_dir:
            for name in ("policy.c", "policy.h"):
                (Path(build_dir) / name).write_bytes(files[name])
            shared = build([Path(build_dir) / "policy.c"], Path(build_dir) / "policy.so")
            library = CFunction(shared, program.function, program.inputs, program.outputs)
            verification = _verify(step, library, onnx_model, options, observations, golden)
            if encoder is not None:
                message = CFunction(shared, programs[1].function, programs[1].inputs, programs[1].outputs)
                verification["c_message"] = _verify_message(encoder, message, golden, options)
        if "c" not in options.formats:
            del files["policy.c"], files["policy.h"]
        manifest = _manifest(step, programs, measured, budget, options, verification, channels, plan_summary)
        manifest["files"] = {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        }
        files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
        _write_files(staging, files)
        _install(staging, destination, options)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _manifest(
    step: AgentStep,
    programs: list[CProgram],
    measured: dict,
    budget: Budget,
    options: ExportOptions,
    verification: dict,
    channels: Sequence[str] | None,
    plan_summary: dict | None,
) -> dict:
    config = step.policy.config
    if channels is None and config.obs_shape[0] == len(POGEMA_CHANNELS):
        channels = POGEMA_CHANNELS
    return {
        "format": f"{EXPORT_FORMAT_PREFIX}1",
        "policy": config.to_dict(),
        "parameters": sum(p.numel() for p in step.policy.parameters()),
        "observation": {
            "shape": list(config.obs_shape),
            "dtype": "float32",
            "layout": "C, F, F (row-major)",
            "channels": list(channels) if channels else None,
            "window": "cell (a, b) shows map cell (row - r + a, col - r + b); off-map cells are 0",
            "values": "0 or 1 per cell",
        },
        "actions": [
            {"index": i, "name": n, "d_row": dr, "d_col": dc} for i, (n, dr, dc) in enumerate(ACTIONS)
        ],
        "interface": {
            "inputs": [{"name": s.name, "shape": list(s.shape)} for s in programs[0].inputs],
            "outputs": [{"name": s.name, "shape": list(s.shape)} for s in programs[0].outputs],
            "functions": [p.signature() for p in programs],
            "state": {
                "layout": "[memory (M) | history (h*D)]",
                "memory": step.memory_size,
                "history": list(step.history_shape),
                "reset": "at an episode's first step (or a restarted agent): state is discarded, reset=1",
            },
            "neighbours": {
                "max": options.max_neighbours if step.message_source else 0,
                "message_size": step.message_size,
                "message_source": step.message_source,
                "padding": "rows past neighbour_count are ignored (message_mask 0)",
                "order": "any: attention over messages is permutation invariant",
            },
        },
        "radio": message_format(step.message_size, step.message_source) if step.message_source else None,
        "c": {
            "weights": "int8 per output row + float32 scale" if options.int8 else "float32",
            "api": "gs_policy_step(obs, state, neighbour_messages, neighbour_count, reset, logits, "
            "new_state)",
            "embedded_golden_vectors": min(options.embedded_golden, options.golden_vectors),
        },
        "onnx": {"opset": ONNX_OPSET, "batch": 1} if "onnx" in options.formats else None,
        "rates": {"decision_hz_min": budget.min_rate_hz, "note": "one decision per grid step"},
        "budget": {**asdict(budget), "enforced": options.budget is not None},
        "measured": measured,
        "verification": verification,
        "tolerances": {
            "fp32_abs": options.fp32_tolerance,
            "drift_abs": options.drift_tolerance,
            "int8_min_agreement": options.int8_min_agreement,
        },
        "waypoints": plan_summary,
        "tools": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        **options.extra,
    }
