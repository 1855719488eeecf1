"""Export a trained swarm policy: policy.onnx, policy.c/.h, golden.npz, manifest.json, firmware, waypoints.

Everything is written into a temporary directory next to the destination, verified (torch vs ONNX Runtime
vs the compiled C on the host, then the C on the emulated STM32F405 when its tools are installed), hashed,
fsynced and only then renamed into place: a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from deploy import mcu
from deploy.agent import AgentStep, MessageEncoder
from deploy.budget import CRAZYFLIE, Budget, check, check_weights, estimate, step_time
from deploy.cbuild import CFunction, build, selftest_error
from deploy.ccompile import compile_module
from deploy.cprogram import CProgram
from deploy.csource import render_header, render_source
from deploy.errors import ExportError
from deploy.manifest import build_manifest
from deploy.onnx_export import onnx_bytes, require_onnx
from deploy.quantize import Int8Plan, plan_int8
from deploy.verify import (
    Runner,
    c_runner,
    check_export,
    check_message_encoder,
    encoder_runner,
    input_seed,
    sample_inputs,
    torch_runner,
)
from deploy.waypoints import WaypointPlan, plan_files
from fsio import fsync_directory, fsync_tree, read_bounded
from memory import SwarmPolicy

FORMATS = ("onnx", "c", "waypoints")
MCU_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how to check it.

    mcu: "auto" builds and runs the self-test firmware on the emulated STM32F405 when arm-none-eabi-gcc,
    newlib and qemu-system-arm are installed (budgets are then checked against what it measures, else
    against the estimate), "on" requires them, "off" skips it.
    """

    formats: tuple[str, ...] = ("onnx", "c")
    int8: bool = False
    max_neighbours: int = 8
    budget: Budget | None = CRAZYFLIE
    mcu: str = "auto"
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
    int8_plan_agreement: float = 0.995  # what the layer choice aims for on its own samples (headroom)
    int8_calibration_samples: int = 512
    int8_selection_samples: int = 1000  # at least; more when --verify-samples asks for more
    extra: dict = field(default_factory=dict)  # merged into the manifest (source, scenario, ...)


def golden_inputs(step: AgentStep, count: int, seed: int, observations: np.ndarray | None) -> list[dict]:
    """Golden vectors: the first starts an episode alone (reset, no neighbours), the second has every
    neighbour slot filled, the rest come from the sampled recurrence."""
    samples = sample_inputs(step, max(count, 2), input_seed(seed, "golden"), observations)
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


def _with_outputs(step: AgentStep, run: Runner, samples: list[dict]) -> list[dict[str, np.ndarray]]:
    """Each input set with the outputs of `run` added under the step's output names."""
    return [{**inputs, **dict(zip(step.output_names, run(inputs), strict=True))} for inputs in samples]


def _banner(step: AgentStep, estimated: dict, int8: bool) -> str:
    config = step.policy.config
    return (
        f"GridSwarm policy export: {config.name}, obs {config.obs_shape}, width {config.width}\n"
        f"weights {'int8 per-row' if int8 else 'float32'}: {estimated['weight_bytes']} B, "
        f"{estimated['macs']} MACs per step\n"
        f"generated {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} "
        f"by torch {torch.__version__}; C99, float only, no malloc\n"
    )


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    """The files into the staging directory, every one and the directories fsynced before it is renamed."""
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    fsync_tree(directory)


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


@dataclass
class _Sources:
    """policy.c / policy.h of one build and the host library compiled from them."""

    header: str
    source: str
    library: Path


def _render_and_build(
    directory: Path,
    programs: list[CProgram],
    step: AgentStep,
    embedded: list[dict],
    banner: str,
    options: ExportOptions,
    reference: str,
) -> _Sources:
    header = render_header(programs, step, banner, options.fp32_tolerance, reference)
    source = render_source(programs, step, embedded, banner)
    (directory / "policy.h").write_text(header)
    (directory / "policy.c").write_text(source)
    name = f"policy-{len(list(directory.glob('policy-*.so')))}.so"  # each build loads under its own name
    return _Sources(header, source, build([directory / "policy.c"], directory / name))


def _check_selftest(library: Path, options: ExportOptions) -> float:
    error = selftest_error(library)
    if not error <= options.fp32_tolerance:
        raise ExportError(
            f"gs_policy_selftest() of the host build returns {error:.3g}, over {options.fp32_tolerance:.0e}"
        )
    return error


def _on_mcu(
    directory: Path,
    step: AgentStep,
    references: tuple[Runner, Runner | None],
    all_slots: dict[str, np.ndarray],
    options: ExportOptions,
    observations: np.ndarray | None,
    budget: Budget,
) -> tuple[dict, bytes]:
    """Cross-compile, run the self-test firmware in QEMU, check its errors; (manifest section, ELF bytes).
    references: what the step's and the message encoder's outputs should be (torch, or the int8 host
    build)."""
    reference, encode = references
    recurrence = sample_inputs(
        step, options.drift_steps, input_seed(options.seed, "mcu_recurrence"), observations
    )
    data = mcu.selftest_data(step, reference, recurrence, all_slots, encode)
    (directory / "selftest_data.h").write_text(data)
    policy_object, elf = mcu.build_firmware(directory)
    doubles = mcu.double_precision_calls(policy_object)
    if doubles:
        raise ExportError(f"the policy's C calls double-precision helpers on the MCU: {', '.join(doubles)}")
    run = mcu.run_firmware(elf)
    bounds = {
        "golden": options.fp32_tolerance,
        "all_slots": options.fp32_tolerance,
        "recurrence": options.drift_tolerance,
    }
    for name, bound in bounds.items():
        if not getattr(run, name) <= bound:
            raise ExportError(
                f"on the emulated STM32F405 the {name} outputs differ from the reference by "
                f"{getattr(run, name):.3g}, over {bound:.0e}"
            )
    policy_sizes = mcu.sizes(policy_object)
    section = {
        "measured": True,
        "target": mcu.TARGET,
        "compiler_flags": [*mcu.CPU_FLAGS, *mcu.C_FLAGS],
        "policy_object": policy_sizes.to_dict(),
        "firmware": {"file": "firmware/policy_selftest.elf", **mcu.sizes(elf).to_dict()},
        "flash_bytes": policy_sizes.flash_bytes,
        "stack_bytes": run.stack_bytes,
        "ram_bytes": policy_sizes.static_ram_bytes + run.stack_bytes,
        "instructions_per_step": run.instructions_per_step,
        "instructions_per_message": run.instructions_per_message,
        "instructions_per_decision": run.instructions_per_step + run.instructions_per_message,
        "instructions_counted": "gs_policy_step with every neighbour slot filled (and gs_policy_message); "
        "QEMU -icount shift=0 and TIM2 at 1 GHz of virtual time around the call, less the call's overhead",
        **step_time(run.instructions_per_step + run.instructions_per_message, budget),
        "selftest": {
            "max_abs_error": run.max_abs_error,
            "golden": run.golden,
            "recurrence": run.recurrence,
            "recurrence_steps": len(recurrence),
            "all_slots": run.all_slots,
            "bounds": bounds,
        },
        "double_precision_calls": doubles,
        "run": " ".join(mcu.qemu_command(Path("firmware/policy_selftest.elf"), "-icount", "shift=0")),
    }
    return section, elf.read_bytes()


def _plan_int8(step: AgentStep, options: ExportOptions, observations: np.ndarray | None) -> Int8Plan:
    """GPTQ moments and the layers kept in float32, from samples of the verification's kind (other seeds)."""
    calibration = sample_inputs(
        step, options.int8_calibration_samples, input_seed(options.seed, "int8_calibration"), observations
    )
    count = max(options.int8_selection_samples, options.verify_samples)
    selection = sample_inputs(step, count, input_seed(options.seed, "int8_selection"), observations)
    return plan_int8(step, calibration, selection, options.int8_plan_agreement)


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
    Raises UnsupportedOpError / BudgetError / ExportError with one-line messages, and
    optdeps.MissingPackageError when the onnx format's packages are missing; writes nothing then.
    """
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise ExportError(f"unknown format {sorted(unknown)[0]!r}: expected some of {', '.join(FORMATS)}")
    if options.mcu not in MCU_MODES:
        raise ExportError(f"mcu {options.mcu!r}: expected one of {', '.join(MCU_MODES)}")
    if "waypoints" in options.formats and plan is None:
        raise ExportError("format 'waypoints' needs an episode, positions file or rollout to plan from")
    if "onnx" in options.formats:
        require_onnx()
    missing = mcu.missing_tools() if options.mcu != "off" else []
    if options.mcu == "on" and missing:
        raise ExportError(f"the MCU check needs {', '.join(missing)}: {mcu.INSTALL}")
    on_mcu = options.mcu != "off" and not missing
    destination = Path(out_dir).absolute()
    prepare_destination(destination, options.overwrite, options.protected)
    step = AgentStep(policy, options.max_neighbours)
    example = step.example_inputs(torch.Generator().manual_seed(options.seed))
    int8_plan = _plan_int8(step, options, observations) if options.int8 else None
    rounding = {
        "int8": options.int8,
        "float_modules": int8_plan.float_modules if int8_plan else (),
        "hessians": int8_plan.hessians if int8_plan else None,
    }
    programs = [compile_module(step, example, step.output_names, **rounding)]
    encoder = MessageEncoder(policy) if step.message_source == "encoding" else None
    if encoder is not None:
        programs.append(
            compile_module(
                encoder, {"obs": example["obs"]}, ["message"], function="gs_policy_message", **rounding
            )
        )
    program = programs[0]
    budget = options.budget or replace(CRAZYFLIE, target="none (host)")
    estimated = estimate(programs, options.int8, budget)
    if options.budget is not None:
        check_weights(estimated["weight_bytes"], budget, options.int8)
    if options.budget is not None and not on_mcu:
        check(
            estimated["weight_bytes"],
            estimated["ram_bytes"],
            estimated["estimated_rate_hz"],
            budget,
            options.int8,
            "estimated from the compiled graph",
        )
    golden_in = golden_inputs(step, options.golden_vectors, options.seed, observations)
    golden = _with_outputs(step, torch_runner(step), golden_in)
    banner = _banner(step, estimated, options.int8)
    files: dict[str, bytes] = {}
    onnx_model = None
    if "onnx" in options.formats:
        onnx_model = onnx_bytes(
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
        with tempfile.TemporaryDirectory(prefix="gridswarm-cbuild-") as build_name:
            build_dir = Path(build_name)
            embedded = golden[: options.embedded_golden]
            built = _render_and_build(
                build_dir, programs, step, embedded, banner, options, "the float32 torch policy's outputs"
            )
            library = CFunction(built.library, program.function, program.inputs, program.outputs)
            verification = check_export(step, library, onnx_model, options, observations, golden)
            reference, encode = torch_runner(step), None
            if encoder is not None:
                message = CFunction(
                    built.library, programs[1].function, programs[1].inputs, programs[1].outputs
                )
                verification["c_message"] = check_message_encoder(encoder, message, golden, options)
                encode = c_runner(message) if options.int8 else encoder_runner(encoder)
            if options.int8:  # the self-tests check a build against the int8 outputs verified here
                reference = c_runner(library)
                deviation = verification["c_golden"]["max_abs_error"]
                built = _render_and_build(
                    build_dir,
                    programs,
                    step,
                    _with_outputs(step, reference, golden_in[: options.embedded_golden]),
                    banner,
                    options,
                    "the int8 outputs this export verified on the host (int8 weights move the outputs of the "
                    f"float32 policy by up to {deviation:.2g} on these vectors)",
                )
            verification["c_selftest"] = {
                "host": _check_selftest(built.library, options),
                "reference": "int8 host build" if options.int8 else "float32 torch",
            }
            files["policy.h"], files["policy.c"] = built.header.encode(), built.source.encode()
            mcu_section: dict = {
                "measured": False,
                "reason": "--mcu off"
                if options.mcu == "off"
                else f"{', '.join(missing)} not found ({mcu.INSTALL})",
            }
            if on_mcu:
                mcu_section, elf = _on_mcu(
                    build_dir, step, (reference, encode), golden_in[1], options, observations, budget
                )
                files["firmware/policy_selftest.elf"] = elf
                for name in (*mcu.FIRMWARE_FILES, "selftest_data.h"):
                    files[f"firmware/{name}"] = (build_dir / name).read_bytes()
                if options.budget is not None:
                    check(
                        mcu_section["flash_bytes"],
                        mcu_section["ram_bytes"],
                        mcu_section["estimated_rate_hz"],
                        budget,
                        options.int8,
                        "measured on the emulated STM32F405",
                    )
        if "c" not in options.formats:
            del files["policy.c"], files["policy.h"]
        manifest = build_manifest(
            step,
            programs,
            estimated,
            mcu_section,
            budget,
            options,
            verification,
            channels,
            plan_summary,
            int8_plan,
        )
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
