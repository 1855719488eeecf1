"""The exported C on the emulated STM32F405: cross-compiled, run in QEMU, measured."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from deploy import mcu
from deploy.budget import CRAZYFLIE
from deploy.export import ExportOptions, export_policy
from tests.deploy.helpers import decisive_policy

MISSING = mcu.missing_tools()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}: {mcu.INSTALL}")


def small(name: str, directory: Path) -> Path:
    options = ExportOptions(formats=("c",), verify_samples=100, mcu="on")
    export_policy(decisive_policy(name, (3, 5, 5), 1, perturb=0.02), directory / name, options)
    return directory / name


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> Path:
    return small("gru", tmp_path_factory.mktemp("mcu"))


def rebuild(export: Path, directory: Path, *flags: str) -> Path:
    """The export's self-test firmware built again from its own files (with extra compiler flags)."""
    for name in ("policy.c", "policy.h"):
        shutil.copy(export / name, directory / name)
    shutil.copy(export / "firmware" / "selftest_data.h", directory / "selftest_data.h")
    return mcu.build_firmware(directory, flags)[1]


def test_the_firmware_counts_exactly_what_a_trace_counts(small_export, tmp_path):
    manifest = json.loads((small_export / "manifest.json").read_text())
    elf = rebuild(small_export, tmp_path, "-DGS_SELFTEST_COUNT_ONLY=1")
    counted = mcu.run_firmware(elf).instructions_per_step
    assert mcu.traced_instructions(elf, "gs_policy_step", tmp_path) == [counted]
    assert counted == manifest["mcu"]["instructions_per_step"]
    assert counted > manifest["estimate"]["macs"]  # at least one instruction per multiply-accumulate


def test_the_message_encoder_is_counted_exactly_too(tmp_path):
    export = small("neighbour_attention", tmp_path)
    elf = rebuild(export, tmp_path, "-DGS_SELFTEST_COUNT_ONLY=1")
    run = mcu.run_firmware(elf)
    assert mcu.traced_instructions(elf, "gs_policy_message", tmp_path) == [run.instructions_per_message]
    assert mcu.traced_instructions(elf, "gs_policy_step", tmp_path) == [run.instructions_per_step]
    section = json.loads((export / "manifest.json").read_text())["mcu"]
    assert section["instructions_per_decision"] == run.instructions_per_step + run.instructions_per_message


def test_the_firmware_reports_a_wrong_expected_output(small_export, tmp_path):
    data = (small_export / "firmware" / "selftest_data.h").read_text()
    # the first expected logit of the recurrence moves by 0.5: the emulated run must show it
    wrong = re.sub(
        r"(gs_test_logits\[\] = \{\s*)(\(?-?[0-9.e+-]+f\)?)",
        lambda m: f"{m.group(1)}({m.group(2)} + 0.5f)",
        data,
        count=1,
    )
    assert wrong != data
    for name in ("policy.c", "policy.h"):
        shutil.copy(small_export / name, tmp_path / name)
    (tmp_path / "selftest_data.h").write_text(wrong)
    run = mcu.run_firmware(mcu.build_firmware(tmp_path)[1])
    assert run.recurrence == pytest.approx(0.5, abs=1e-3) and run.max_abs_error >= run.recurrence
    assert run.golden <= 1e-5 and run.all_slots <= 1e-5


def test_the_manifest_carries_the_measured_firmware(small_export):
    manifest = json.loads((small_export / "manifest.json").read_text())
    section = manifest["mcu"]
    elf = (small_export / "firmware" / "policy_selftest.elf").read_bytes()
    assert manifest["files"]["firmware/policy_selftest.elf"]["sha256"] == hashlib.sha256(elf).hexdigest()
    assert elf[:4] == b"\x7fELF" and section["measured"] is True
    assert section["flash_bytes"] == section["policy_object"]["text"] + section["policy_object"]["data"]
    assert section["flash_bytes"] > manifest["estimate"]["weight_bytes"]  # weights plus code
    assert 0 < section["stack_bytes"] < 16 * 1024
    assert section["ram_bytes"] == section["policy_object"]["static_ram_bytes"] + section["stack_bytes"]
    assert section["instructions_per_message"] == 0  # gru has no message encoder
    ms = section["instructions_per_decision"] * section["cycles_per_instruction_assumed"] / 168e3
    assert section["estimated_decision_ms"] == pytest.approx(ms)
    assert section["selftest"]["max_abs_error"] <= 1e-5 and section["double_precision_calls"] == []


@pytest.mark.slow
@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
@pytest.mark.parametrize("name", ["srmt", "rmt", "gru", "neighbour_attention"])
def test_drone_policies_run_on_the_emulated_mcu_within_budget(name, int8, tmp_path):
    options = ExportOptions(formats=("c",), int8=int8, verify_samples=200, mcu="on")
    manifest = export_policy(decisive_policy(name, (3, 11, 11), 4, perturb=0.02), tmp_path / name, options)
    section = manifest["mcu"]
    bounds = section["selftest"]["bounds"]
    assert all(section["selftest"][key] <= bound for key, bound in bounds.items())
    assert (
        section["flash_bytes"] <= CRAZYFLIE.max_flash_bytes
        and section["ram_bytes"] <= CRAZYFLIE.max_ram_bytes
    )
    assert section["estimated_rate_hz"] >= CRAZYFLIE.min_rate_hz
    assert section["instructions_per_step"] > manifest["estimate"]["macs"]
