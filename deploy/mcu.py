"""The exported C on the Crazyflie's own MCU: cross-compiled for the STM32F405 and run in QEMU.

`gs_policy_step` and a self-test harness (deploy/firmware: start-up code, linker script, selftest.c) are
built with Debian's arm-none-eabi-gcc and newlib for the Cortex-M4F, hard float, and run in
`qemu-system-arm -M netduinoplus2` (an emulated STM32F405) with semihosting and `-icount shift=0`. The
firmware checks the embedded golden vectors, a recurrence of RECURRENCE_STEPS steps and the every-slot case
against expected outputs, counts the instructions of one every-slot step (exact, see selftest.c) and its
stack use (painted), and prints one line that `run_firmware` parses. Sizes come from arm-none-eabi-size.
QEMU does not model cycles: the step time is instructions x an assumed cycles-per-instruction factor.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.agent import AgentStep
from deploy.cbuild import first_error
from deploy.cprogram import array_literal, float_literal
from deploy.errors import ExportError

GCC, SIZE, NM, QEMU = "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm"
INSTALL = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
TARGET = "STM32F405 (Cortex-M4F, 168 MHz) emulated by qemu-system-arm -M netduinoplus2"
CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
# The host verification's flags (deploy.cbuild.STRICT_FLAGS), plus sections the linker can drop.
C_FLAGS = (
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wdouble-promotion",
    "-ffp-contract=off",
    "-ffunction-sections",
    "-fdata-sections",
)
FIRMWARE_FILES = ("startup.c", "selftest.c", "stm32f405.ld")
RECURRENCE_STEPS = 50
RUN_TIMEOUT_S = 120.0
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def missing_tools() -> list[str]:
    """The tools of the MCU check that are absent (empty when it can run)."""
    missing = [tool for tool in (GCC, SIZE, NM, QEMU) if shutil.which(tool) is None]
    if GCC not in missing:
        specs = subprocess.run([GCC, "-print-file-name=rdimon.specs"], capture_output=True, text=True)
        if not os.path.isabs(specs.stdout.strip()):
            missing.append("newlib (rdimon.specs)")
    return missing


def firmware_sources() -> dict[str, str]:
    """The start-up code, linker script and self-test harness shipped in deploy/firmware."""
    folder = resources.files("deploy") / "firmware"
    return {name: (folder / name).read_text(encoding="utf-8") for name in FIRMWARE_FILES}


@dataclass(frozen=True)
class Sizes:
    """arm-none-eabi-size (Berkeley) of one object or ELF file."""

    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def static_ram_bytes(self) -> int:
        return self.data + self.bss

    def to_dict(self) -> dict:
        return {**vars(self), "flash_bytes": self.flash_bytes, "static_ram_bytes": self.static_ram_bytes}


@dataclass(frozen=True)
class FirmwareRun:
    """What the self-test firmware printed."""

    max_abs_error: float
    golden: float
    recurrence: float
    all_slots: float
    instructions_per_step: int
    instructions_per_message: int  # the message encoder's (neighbour_attention), else 0
    stack_bytes: int


def _c_array(name: str, values: Sequence[np.ndarray] | np.ndarray, ctype: str = "float") -> str:
    """A static const one-dimensional table of every value (a single 0 when there are none, as C wants)."""
    flat = np.concatenate([np.ravel(v) for v in values]) if len(values) else np.zeros(0)
    literal = float_literal if ctype == "float" else str
    return f"static const {ctype} {name}[] = {array_literal(flat, literal)};"


def _state_vector(step: AgentStep, values: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(1, GS_STATE_SIZE): the state parts under `names` (memory and history, or their new_ outputs)."""
    parts = [values[name].reshape(1, -1) for name in names]
    return np.concatenate(parts, axis=1) if parts else np.zeros((1, 0), np.float32)


def selftest_data(
    step: AgentStep,
    reference: Runner,
    recurrence: list[dict[str, np.ndarray]],
    full: dict[str, np.ndarray],
    encode: Runner | None = None,
) -> str:
    """selftest_data.h: the recurrence inputs (own state fed back; slots past the count hold NaN) with the
    `reference` runner's outputs, and the every-slot case `full` with its outputs (and, given the message
    encoder's reference `encode`, the message of its observation)."""
    inputs_of = [name for name, _ in step.state_names]
    outputs_of = [name for _, name in step.state_names]
    messages_per_step = step.max_neighbours * step.message_size if step.message_source else 0
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "messages", "logits", "states")}
    counts, resets = [], []
    state: list[np.ndarray] = []
    for t, sample in enumerate(recurrence):
        inputs = {**sample, "reset": np.array([t == 0])}
        for position, name in enumerate(inputs_of):
            inputs[name] = state[position] if state else np.zeros_like(sample[name])
        outputs = dict(zip(step.output_names, reference(inputs), strict=True))
        state = [
            np.asarray(outputs[out]).reshape(sample[name].shape)
            for name, out in zip(inputs_of, outputs_of, strict=True)
        ]
        rows["obs"].append(inputs["obs"].reshape(-1))
        if messages_per_step:
            count = int(inputs["message_mask"].sum())
            messages = inputs["messages"].astype(np.float32).reshape(step.max_neighbours, -1).copy()
            messages[count:] = np.nan  # must not reach any output
            rows["messages"].append(messages.reshape(-1))
            counts.append(count)
        else:
            counts.append(0)
        resets.append(int(t == 0))
        rows["logits"].append(np.asarray(outputs["logits"]).reshape(-1))
        rows["states"].append(_state_vector(step, outputs, outputs_of).reshape(-1))
    full_outputs = dict(zip(step.output_names, reference(full), strict=True))
    full_messages = full["messages"].reshape(-1) if messages_per_step else np.zeros(0, np.float32)
    lines = [
        "/* Generated by gridswarm export: inputs and expected outputs of the self-test firmware. */",
        f"#define GS_TEST_STEPS {len(recurrence)}",
        "/* step t of each gs_test_ table starts at t times GS_OBS_SIZE, the message slots"
        " (GS_MAX_NEIGHBOURS x GS_MESSAGE_SIZE), GS_NUM_ACTIONS or GS_STATE_SIZE */",
        _c_array("gs_test_obs", rows["obs"]),
        _c_array("gs_test_messages", rows["messages"]),
        _c_array("gs_test_counts", np.array(counts), "int"),
        _c_array("gs_test_resets", np.array(resets), "int"),
        _c_array("gs_test_logits", rows["logits"]),
        _c_array("gs_test_states", rows["states"]),
        _c_array("gs_full_obs", [full["obs"]]),
        _c_array("gs_full_state", [_state_vector(step, full, inputs_of)]),
        _c_array("gs_full_messages", [full_messages]),
        f"static const int gs_full_reset = {int(full['reset'][0])};",
        _c_array("gs_full_logits", [np.asarray(full_outputs["logits"])]),
        _c_array("gs_full_new_state", [_state_vector(step, full_outputs, outputs_of)]),
        *([_c_array("gs_full_message", [encode({"obs": full["obs"]})[0]])] if encode else []),
        "",
    ]
    return "\n".join(lines)


def _run(command: Sequence[str], what: str, timeout: float = 300.0) -> str:
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"{what} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise ExportError(f"{what} failed: {first_error(result.stderr or result.stdout)}")
    return result.stdout


def sizes(path: Path) -> Sizes:
    """text, data and bss of an object or ELF file (arm-none-eabi-size, Berkeley format)."""
    fields = _run([SIZE, "-B", str(path)], f"{SIZE} {path.name}").splitlines()[1].split()
    return Sizes(int(fields[0]), int(fields[1]), int(fields[2]))


def double_precision_calls(path: Path) -> list[str]:
    """The soft-float double helpers (__aeabi_d*) an object calls: none for float-only C."""
    symbols = _run([NM, "-u", str(path)], f"{NM} {path.name}").split()
    return sorted(s for s in symbols if s.startswith("__aeabi_d") or s in ("__aeabi_f2d", "__aeabi_i2d"))


def build_firmware(directory: Path, extra_flags: Sequence[str] = ()) -> tuple[Path, Path]:
    """Compile directory/policy.c (with policy.h, selftest_data.h and the firmware sources written there) to
    policy.o and link firmware/policy_selftest.elf; returns (object, elf)."""
    for name, text in firmware_sources().items():
        (directory / name).write_text(text)
    common = [GCC, *CPU_FLAGS, *C_FLAGS, *extra_flags, f"-I{directory}"]
    policy_object = directory / "policy.o"
    _run(
        [*common, "-c", str(directory / "policy.c"), "-o", str(policy_object)],
        "arm-none-eabi-gcc on policy.c",
    )
    elf = directory / "policy_selftest.elf"
    _run(
        [
            *common,
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-T",
            str(directory / "stm32f405.ld"),
            "-Wl,--gc-sections",
            str(directory / "startup.c"),
            str(directory / "selftest.c"),
            str(policy_object),
            "-lm",
            "-o",
            str(elf),
        ],
        "linking the self-test firmware",
    )
    return policy_object, elf


def qemu_command(elf: Path, *extra: str) -> list[str]:
    """The emulator command line of the self-test firmware."""
    return [
        QEMU,
        "-M",
        "netduinoplus2",
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        *extra,
        "-kernel",
        str(elf),
    ]


_LINE = re.compile(
    r"max_abs_error=(\S+) golden=(\S+) recurrence=(\S+) all_slots=(\S+) "
    r"instructions_per_step=(\d+) instructions_per_message=(\d+) stack_bytes=(\d+)"
)


def run_firmware(elf: Path, timeout: float = RUN_TIMEOUT_S) -> FirmwareRun:
    """Run the self-test in QEMU with one virtual nanosecond per instruction; parse its line."""
    output = _run(
        qemu_command(elf, "-icount", "shift=0"), "the self-test firmware in qemu-system-arm", timeout
    )
    found = _LINE.search(output)
    if found is None:
        raise ExportError(f"the self-test firmware printed no result line: {output.strip()[:120]!r}")
    errors = [float(v) for v in found.groups()[:4]]
    return FirmwareRun(*errors, *(int(v) for v in found.groups()[4:]))


def symbol_address(elf: Path, name: str) -> int:
    """Address of a function in the ELF (without the Thumb bit)."""
    for line in _run([NM, str(elf)], f"{NM} {elf.name}").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1
    raise ExportError(f"{elf.name} has no symbol {name}")


def traced_instructions(
    elf: Path, function: str, directory: Path, timeout: float = RUN_TIMEOUT_S
) -> list[int]:
    """Instructions executed in each call of `function`, counted from QEMU's one-line-per-instruction trace
    (-singlestep -d exec,nochain): from the entry PC to the return address (the instruction after the call).
    An independent count of what the firmware measures with its timer; the trace streams through a pipe."""
    entry = symbol_address(elf, function)
    fifo = directory / f"trace-{function}.fifo"
    os.mkfifo(fifo)
    command = qemu_command(elf, "-singlestep", "-d", "exec,nochain", "-D", str(fifo))
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    counts: list[int] = []
    try:
        with open(fifo) as trace:
            previous, returning, count = -1, -1, 0
            for line in trace:
                start = line.find("[")
                pc = int(line[start + 10 : start + 18], 16)  # [flags/PC/...]
                if returning >= 0:
                    if pc in (returning, returning + 2):  # after a 16-bit blx or a 32-bit bl
                        counts.append(count)
                        returning = -1
                    else:
                        count += 1
                elif pc == entry:
                    returning, count = previous + 2, 1
                previous = pc
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        fifo.unlink()
    return counts
