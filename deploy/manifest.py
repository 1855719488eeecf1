"""manifest.json of an export: what the files are, how to call them, and what the export measured."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from deploy.agent import AgentStep
from deploy.budget import Budget
from deploy.cprogram import CProgram
from deploy.onnx_export import ONNX_OPSET
from deploy.quantize import Int8Plan
from deploy.radio import message_format
from scenarios.schema import DEFAULT_CHANNELS
from sim.actions import ACTION_NAMES, MOVES

if TYPE_CHECKING:
    from deploy.export import ExportOptions


def describe_sizes(manifest: dict) -> str:
    """One line: the policy's size and time, measured on the emulated MCU or else estimated (and why)."""
    section, estimated = manifest["mcu"], manifest["estimate"]
    if not section["measured"]:
        return (
            f"weights {estimated['weight_bytes']} B, RAM {estimated['ram_bytes']} B, "
            f"{estimated['macs']} MACs, ~{estimated['estimated_ms']:.2f} ms estimated; "
            f"MCU check skipped: {section['reason']}"
        )
    return (
        f"on the emulated STM32F405: {section['flash_bytes']} B flash, {section['ram_bytes']} B RAM (stack "
        f"{section['stack_bytes']} B), {section['instructions_per_decision']} instructions per decision, "
        f"~{section['estimated_decision_ms']:.2f} ms at 168 MHz ({section['cycles_per_instruction_assumed']} "
        f"cycles per instruction assumed), self-test error {section['selftest']['max_abs_error']:.2g}"
    )


def _int8_section(plan: Int8Plan, verification: dict) -> dict:
    return {
        "rounding": "GPTQ (calibration inputs' second moments), one float32 scale per output row",
        "calibration_inputs": verification["inputs"],
        "calibration_samples": plan.calibration_samples,
        "float32_modules": list(plan.float_modules),
        "planned_agreement": plan.agreement,
        "planned_on_samples": plan.selection_samples,
    }


def build_manifest(
    step: AgentStep,
    programs: list[CProgram],
    estimated: dict,
    mcu_section: dict,
    budget: Budget,
    options: ExportOptions,
    verification: dict,
    channels: Sequence[str] | None,
    plan_summary: dict | None,
    int8_plan: Int8Plan | None,
) -> dict:
    """manifest.json (without the file hashes, which the exporter adds last)."""
    config = step.policy.config
    if channels is None and config.obs_shape[0] == len(DEFAULT_CHANNELS):
        channels = DEFAULT_CHANNELS
    return {
        "format": "gridswarm-export-1",
        "policy": config.to_dict(),
        # the actor's: the critic's value head is not exported
        "parameters": sum(p.numel() for p in step.policy.parameters())
        - sum(p.numel() for p in step.policy.value_head.parameters()),
        "observation": {
            "shape": list(config.obs_shape),
            "dtype": "float32",
            "layout": "C, F, F (row-major)",
            "channels": list(channels) if channels else None,
            "window": "cell (a, b) shows map cell (row - r + a, col - r + b); off-map cells are 0",
            "values": "0 or 1 per cell",
        },
        "actions": [
            {"index": i, "name": name, "d_row": int(d_row), "d_col": int(d_col)}
            for i, (name, (d_row, d_col)) in enumerate(zip(ACTION_NAMES, MOVES, strict=True))
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
                "padding": "rows past neighbour_count are never read (gs_policy_step passes zeros)",
                "order": "any: attention over messages is permutation invariant",
            },
        },
        "radio": message_format(step.message_size, step.message_source) if step.message_source else None,
        "c": {
            "weights": "int8 per output row + float32 scale" if options.int8 else "float32",
            "int8": None if int8_plan is None else _int8_section(int8_plan, verification),
            "api": "gs_policy_step(obs, state, neighbour_messages, neighbour_count, reset, logits, "
            "new_state)",
            "embedded_golden_vectors": min(options.embedded_golden, options.golden_vectors),
            "selftest_bound": options.fp32_tolerance,
        },
        "onnx": {"opset": ONNX_OPSET, "batch": 1} if "onnx" in options.formats else None,
        "rates": {"decision_hz_min": budget.min_rate_hz, "note": "one decision per grid step"},
        "budget": {**asdict(budget), "enforced": options.budget is not None},
        "estimate": estimated,
        "mcu": mcu_section,
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
