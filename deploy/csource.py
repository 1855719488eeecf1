"""policy.h / policy.c: the compiled step wrapped in the fixed-size drone API, with an onboard self-test.

    int   gs_policy_step(obs, state, neighbour_messages, neighbour_count, reset, action_logits, new_state)
    float gs_policy_selftest(void)      largest |error| over the embedded golden vectors
    void  gs_policy_forward(in_..., out_...)   the raw compiled graph (every input and output explicit)

The state vector is the drone's own recurrent state, [memory (M) | history (h*D)]; its first
GS_MESSAGE_SIZE values are what an SRMT drone broadcasts. Received messages are packed into the first
neighbour_count rows of neighbour_messages (K x D floats); the rest are ignored.
"""

from __future__ import annotations

import numpy as np

from deploy import radio
from deploy.agent import AgentStep
from deploy.c_runtime import runtime_source
from deploy.cprogram import CProgram, array_literal, float_literal, link

GUARD = "GRIDSWARM_POLICY_H"


def render_header(
    programs: list[CProgram], step: AgentStep, banner: str, selftest_bound: float, selftest_reference: str
) -> str:
    """policy.h: sizes, the drone API, the self-test and its bound, the radio (for policies that talk)."""
    config = step.policy.config
    state_size = step.memory_size + int(np.prod(step.history_shape))
    defines = {
        "GS_OBS_CHANNELS": config.obs_shape[0],
        "GS_OBS_SIZE": int(np.prod(config.obs_shape)),
        "GS_FOV": config.obs_shape[1],
        "GS_NUM_ACTIONS": config.num_actions,
        "GS_MEMORY_SIZE": step.memory_size,
        "GS_STATE_SIZE": state_size,
        "GS_MAX_NEIGHBOURS": step.max_neighbours if step.message_source else 0,
        "GS_MESSAGE_SIZE": step.message_size,
    }
    lines = [f"/* {line} */" if line else "" for line in banner.splitlines()]
    lines += [f"#ifndef {GUARD}", f"#define {GUARD}", ""]
    lines += [f"#define {name} {value}" for name, value in defines.items()]
    lines += [
        "",
        "/* One decision of one drone; returns the argmax action (0 stay, 1 up, 2 down, 3 left, 4 right). */",
        "int gs_policy_step(const float *obs, const float *state, const float *neighbour_messages,",
        "                   int neighbour_count, int reset, float *action_logits, float *new_state);",
        "/* Runs the embedded golden vectors; returns the largest absolute output error against",
        f"   {selftest_reference}: at most GS_SELFTEST_BOUND on a correct build (infinite for a NaN). */",
        f"#define GS_SELFTEST_BOUND {float_literal(selftest_bound)}",
        "float gs_policy_selftest(void);",
        "/* The compiled graph with every input and output explicit (booleans as 0.0f / 1.0f). */",
        programs[0].signature() + ";",
        *(
            [
                "/* neighbour_attention: this step's broadcast, from the drone's own observation. */",
                "#define GS_MESSAGE_ENCODER 1",
                programs[1].signature() + ";",
            ]
            if len(programs) > 1
            else []
        ),
        *(radio.c_declarations(step.message_size) if step.message_size else []),
        "",
        f"#endif /* {GUARD} */",
        "",
    ]
    return "\n".join(lines)


def _step_body(program: CProgram, step: AgentStep) -> list[str]:
    names = {spec.name for spec in program.inputs}
    body = ["    int k, best = 0;"]
    if "message_mask" in names:
        # Only the first neighbour_count rows are read; the rest of the graph's input is zeros, so nothing
        # in an unused slot (NaN, infinity, another buffer) can reach the attention's value products.
        body += [
            "    static float messages[GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE];",
            "    float mask[GS_MAX_NEIGHBOURS];",
            "    const int count = neighbour_count < 0 ? 0",
            "        : (neighbour_count > GS_MAX_NEIGHBOURS ? GS_MAX_NEIGHBOURS : neighbour_count);",
            "    for (k = 0; k < GS_MAX_NEIGHBOURS; ++k) mask[k] = k < count ? 1.0f : 0.0f;",
            "    for (k = 0; k < GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE; ++k)",
            "        messages[k] = k < count * GS_MESSAGE_SIZE ? neighbour_messages[k] : 0.0f;",
        ]
    else:
        body += ["    (void)neighbour_messages;", "    (void)neighbour_count;"]
    if not step.state_names:
        body += ["    (void)state;", "    (void)new_state;"]
    body.append("    const float reset_flag = reset ? 1.0f : 0.0f;")
    history_offset = "GS_MEMORY_SIZE"
    arguments = {
        "obs": "obs",
        "memory": "state",
        "history": f"state + {history_offset}",
        "messages": "messages",
        "message_mask": "mask",
        "reset": "&reset_flag",
        "logits": "action_logits",
        "new_memory": "new_state",
        "new_history": f"new_state + {history_offset}",
    }
    call = [arguments[spec.name] for spec in program.inputs] + [
        arguments[spec.name] for spec in program.outputs
    ]
    body.append(f"    {program.function}({', '.join(call)});")
    body += [
        "    for (k = 1; k < GS_NUM_ACTIONS; ++k)",
        "        if (action_logits[k] > action_logits[best]) best = k;",
        "    return best;",
    ]
    return body


def _selftest(program: CProgram, golden: list[dict[str, np.ndarray]]) -> list[str]:
    lines = []
    for spec in program.inputs + program.outputs:
        values = np.stack([g[spec.name].astype(np.float32).ravel() for g in golden])
        lines.append(
            f"static const float gs_golden_{spec.name}[{values.size}] = "
            f"{array_literal(values, float_literal)};"
        )
    for spec in program.outputs:
        lines.append(f"static float gs_result_{spec.name}[{spec.numel}];")
    lines += [
        "",
        "float gs_policy_selftest(void)",
        "{",
        "    float worst = 0.0f;",
        f"    for (int g = 0; g < {len(golden)}; ++g) {{",
    ]
    call = [f"gs_golden_{s.name} + g * {s.numel}" for s in program.inputs]
    call += [f"gs_result_{s.name}" for s in program.outputs]
    lines.append(f"        {program.function}({', '.join(call)});")
    for spec in program.outputs:
        lines += [
            f"        for (int i = 0; i < {spec.numel}; ++i) {{",
            f"            const float error = fabsf(gs_result_{spec.name}[i] - "
            f"gs_golden_{spec.name}[g * {spec.numel} + i]);",
            "            if (!(error <= worst)) worst = isnan(error) ? INFINITY : error;",
            "        }",
        ]
    lines += ["    }", "    return worst;", "}"]
    return lines


def render_source(
    programs: list[CProgram], step: AgentStep, golden: list[dict[str, np.ndarray]], banner: str
) -> str:
    """policy.c: includes, kernels, weights, the compiled functions, the step wrapper and the self-test."""
    program = programs[0]
    lines = [f"/* {line} */" if line else "" for line in banner.splitlines()]
    lines += ["#include <math.h>", "#include <stdint.h>", "#include <string.h>", '#include "policy.h"', ""]
    lines += [link(programs), runtime_source("radio") if step.message_size else ""]
    lines += [
        "int gs_policy_step(const float *obs, const float *state, const float *neighbour_messages,",
        "                   int neighbour_count, int reset, float *action_logits, float *new_state)",
        "{",
    ]
    lines += _step_body(program, step)
    lines += ["}", ""]
    lines += _selftest(program, golden)
    return "\n".join(lines) + "\n"
