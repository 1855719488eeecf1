"""What a target allows (flash, RAM, decision rate) and how an exported policy is held to it.

Two sources of numbers: the measurement on the emulated MCU (deploy.mcu: sizes from arm-none-eabi-size,
stack painted, instructions counted) when its tools are installed, and otherwise an estimate from the
compiled graph (weights, arena, MACs). The estimate is kept in every manifest as a cross-check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deploy.cprogram import CProgram, weight_bytes
from deploy.errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """Limits of a target, and the cycle models that turn instruction or MAC counts into time.

    Flash and RAM are the policy's own: policy.o (code, weights, embedded golden vectors, radio) and its
    static RAM plus the stack of one step; the rest of the drone's firmware is not counted.
    """

    target: str
    max_flash_bytes: int
    max_ram_bytes: int
    min_rate_hz: float
    clock_hz: float = 168e6
    # Cortex-M4F timings: 1 cycle for most integer and single-precision instructions, 2 for loads, 14 for
    # VDIV/VSQRT, 1-3 for branches; flash wait states at 168 MHz are mostly hidden by the ART accelerator.
    # QEMU counts instructions, not cycles: this factor is an assumption, not a measurement.
    cycles_per_instruction: float = 2.0
    # The estimate without an emulator: naive fp32 C at -O2, cycles per operation of the compiled graph.
    cycles_per_mac: float = 7.5
    cycles_per_mac_int8: float = 9.5
    cycles_per_elementwise: float = 5.0
    cycles_per_transcendental: float = 60.0


# A Crazyflie 2.x app-layer task: 128 KiB of the STM32F405's 1 MB flash, 16 KiB of its 128 KiB SRAM, a
# decision at >= 10 Hz (grid steps last about a second; the rest of each period stays free).
CRAZYFLIE = Budget("crazyflie-stm32f405", 128 * 1024, 16 * 1024, 10.0)


def estimate(programs: Sequence[CProgram], int8: bool, budget: Budget) -> dict:
    """Sizes and the estimated time of one decision (every compiled function once) from the compiled graph."""
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


def step_time(instructions: int, budget: Budget) -> dict:
    """The time of one decision at the budget's clock from its measured instruction count."""
    seconds = instructions * budget.cycles_per_instruction / budget.clock_hz
    return {
        "cycles_per_instruction_assumed": budget.cycles_per_instruction,
        "clock_hz": budget.clock_hz,
        "estimated_decision_ms": 1e3 * seconds,
        "estimated_rate_hz": 1.0 / seconds if seconds else float("inf"),
    }


def check_weights(weight_bytes: int, budget: Budget, int8: bool) -> None:
    """BudgetError when the weights alone (a lower bound of the flash the policy takes) break the budget."""
    if weight_bytes > budget.max_flash_bytes:
        raise BudgetError(
            f"{'int8' if int8 else 'float'} weights alone take {weight_bytes} B, over the {budget.target} "
            f"flash budget of {budget.max_flash_bytes} B{'' if int8 else '; try --int8'}"
        )


def check(flash: int, ram: int, rate_hz: float, budget: Budget, int8: bool, source: str) -> None:
    """BudgetError naming the first limit that flash / ram bytes or the decision rate break."""
    if flash > budget.max_flash_bytes:
        hint = "" if int8 else "; try --int8"
        kind = "int8" if int8 else "float"
        raise BudgetError(
            f"the {kind} policy takes {flash} B of flash ({source}), over the {budget.target} budget of "
            f"{budget.max_flash_bytes} B{hint}"
        )
    if ram > budget.max_ram_bytes:
        raise BudgetError(
            f"the policy takes {ram} B of RAM ({source}), over the {budget.target} budget of "
            f"{budget.max_ram_bytes} B"
        )
    if rate_hz < budget.min_rate_hz:
        raise BudgetError(
            f"{rate_hz:.1f} decisions per second ({source}) on {budget.target}, under the budget of "
            f"{budget.min_rate_hz} Hz"
        )
