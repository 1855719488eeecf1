"""The exported C API under hostile inputs: unused neighbour slots, discarded state, radio fields and scales.

A C harness built with the sanitizers (undefined behaviour, float-to-int overflow, address) drives
gs_policy_step and gs_radio_pack / gs_radio_unpack of real exports and prints one line per failed check.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deploy.cbuild import SANITIZE_FLAGS, build, selftest_error
from deploy.export import ExportOptions, export_policy
from tests.deploy.helpers import decisive_policy

OBS_SHAPE = (3, 7, 7)
HARNESS = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "policy.h"

static float obs[GS_OBS_SIZE], state[GS_STATE_SIZE + 1], zeros[GS_STATE_SIZE + 1];
static float messages[GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE + 1];
static float logits_a[GS_NUM_ACTIONS], logits_b[GS_NUM_ACTIONS];
static float next_a[GS_STATE_SIZE + 1], next_b[GS_STATE_SIZE + 1];
static int failures;

static void expect(int ok, const char *what, int a, int b)
{
    if (!ok) {
        printf("FAIL %s %d %d\n", what, a, b);
        ++failures;
    }
}

static int same(const float *a, const float *b, int n)
{
    for (int i = 0; i < n; ++i)
        if (!isfinite(a[i]) || memcmp(&a[i], &b[i], sizeof(float)) != 0) return 0;
    return 1;
}

static void fill_slots(int count, float garbage)
{
    for (int i = 0; i < GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE; ++i)
        messages[i] = i < count * GS_MESSAGE_SIZE ? 0.5f * sinf(0.37f * (float)i) : garbage;
}

int main(void)
{
    const float garbage[] = {NAN, INFINITY, -INFINITY, 3.0e38f, -3.0e38f, 1.0e-45f};
    for (int i = 0; i < GS_OBS_SIZE; ++i) obs[i] = (i % 3 == 0) ? 1.0f : 0.0f;
    for (int i = 0; i < GS_STATE_SIZE; ++i) state[i] = 0.3f * cosf(0.11f * (float)i);
    for (int count = 0; count <= GS_MAX_NEIGHBOURS; ++count)
        for (int g = 0; g < (int)(sizeof garbage / sizeof garbage[0]); ++g) {
            fill_slots(count, 0.0f);
            const int action_a = gs_policy_step(obs, state, messages, count, 0, logits_a, next_a);
            fill_slots(count, garbage[g]);
            const int action_b = gs_policy_step(obs, state, messages, count, 0, logits_b, next_b);
            expect(action_a == action_b && same(logits_b, logits_a, GS_NUM_ACTIONS)
                   && same(next_b, next_a, GS_STATE_SIZE), "unused_slots", count, g);
        }
    /* counts outside 0..K read only what exists */
    fill_slots(GS_MAX_NEIGHBOURS, 0.0f);
    gs_policy_step(obs, state, messages, GS_MAX_NEIGHBOURS, 0, logits_a, next_a);
    gs_policy_step(obs, state, messages, GS_MAX_NEIGHBOURS + 5, 0, logits_b, next_b);
    expect(same(logits_b, logits_a, GS_NUM_ACTIONS), "count_above_k", 0, 0);
    fill_slots(0, NAN);
    gs_policy_step(obs, state, messages, 0, 0, logits_a, next_a);
    gs_policy_step(obs, state, messages, -3, 0, logits_b, next_b);
    expect(same(logits_b, logits_a, GS_NUM_ACTIONS), "negative_count", 0, 0);
    /* reset discards the state: NaN there changes nothing */
    for (int g = 0; g < (int)(sizeof garbage / sizeof garbage[0]); ++g) {
        float poisoned[GS_STATE_SIZE + 1];
        for (int i = 0; i < GS_STATE_SIZE; ++i) poisoned[i] = garbage[g];
        gs_policy_step(obs, zeros, messages, 0, 1, logits_a, next_a);
        gs_policy_step(obs, poisoned, messages, 0, 1, logits_b, next_b);
        expect(same(logits_b, logits_a, GS_NUM_ACTIONS) && same(next_b, next_a, GS_STATE_SIZE), "reset",
               g, 0);
    }
#ifdef GS_RADIO_PACKETS
    static unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX];
    int lengths[GS_RADIO_PACKETS], sender, step, row, col, valid;
    float message[GS_MESSAGE_SIZE], decoded[GS_MESSAGE_SIZE];
    for (int g = 0; g < (int)(sizeof garbage / sizeof garbage[0]); ++g) {
        for (int i = 0; i < GS_MESSAGE_SIZE; ++i) message[i] = 0.25f * (float)i;
        message[GS_MESSAGE_SIZE / 2] = garbage[g];
        const int total = gs_radio_pack(1, 2, 3, 4, 1, message, packets, lengths);
        const int representable = isfinite(garbage[g]) && fabsf(garbage[g]) < 3.3e38f;
        expect(representable ? total > 0 : (total == -1 && lengths[0] == 0), "pack_value", g, total);
    }
    const int fields[][3] = {{300, 300, 300}, {65535, 65535, 65535}, {65536, 0, 0}, {0, 70000, 0},
                             {0, 0, -1}, {-1, 0, 0}};
    for (int f = 0; f < 6; ++f) {
        for (int i = 0; i < GS_MESSAGE_SIZE; ++i) message[i] = 0.25f * (float)i;
        const int fits = fields[f][0] >= 0 && fields[f][0] <= 65535 && fields[f][1] >= 0
            && fields[f][1] <= 65535 && fields[f][2] >= 0 && fields[f][2] <= 65535;
        const int total = gs_radio_pack(fields[f][0], 9, fields[f][1], fields[f][2], 1, message, packets,
                                        lengths);
        expect(fits ? total > 0 : total == -1, "pack_fields", f, total);
        if (fits) {
            const int status = gs_radio_unpack(packets, lengths, &sender, &step, &row, &col, &valid, decoded);
            expect(status == 0 && sender == fields[f][0] && row == fields[f][1] && col == fields[f][2],
                   "round_trip_fields", f, row);
        }
    }
    /* a sender's scale that is NaN, infinite, huge, zero or negative, with a correct CRC, is refused */
    const float scales[] = {NAN, INFINITY, -1.0f, 0.0f, 3.0e38f};
    for (int s = 0; s < 5; ++s) {
        for (int i = 0; i < GS_MESSAGE_SIZE; ++i) message[i] = 0.25f * (float)i;
        gs_radio_pack(1, 2, 3, 4, 1, message, packets, lengths);
        for (int p = 0; p < GS_RADIO_PACKETS; ++p) {
            memcpy(packets[p] + 10, &scales[s], 4);
            const int end = lengths[p] - 2;
            uint16_t crc = 0xFFFF;
            for (int i = 0; i < end; ++i) {
                crc = (uint16_t)(crc ^ (packets[p][i] << 8));
                for (int bit = 0; bit < 8; ++bit)
                    crc = (uint16_t)((crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1));
            }
            packets[p][end] = (unsigned char)(crc & 0xFF);
            packets[p][end + 1] = (unsigned char)(crc >> 8);
        }
        for (int i = 0; i < GS_MESSAGE_SIZE; ++i) decoded[i] = -7.0f;
        const int status = gs_radio_unpack(packets, lengths, &sender, &step, &row, &col, &valid, decoded);
        expect(status == -1 && decoded[0] == -7.0f, "unpack_scale", s, status);
    }
#endif
    printf("checked %d failures\n", failures);
    return failures != 0;
}
"""


@pytest.fixture(scope="module", params=[("srmt", False), ("srmt", True), ("neighbour_attention", False)])
def export(request, tmp_path_factory) -> tuple[Path, bool]:
    name, int8 = request.param
    out = tmp_path_factory.mktemp("inputs") / f"{name}-{'int8' if int8 else 'fp32'}"
    options = ExportOptions(formats=("c",), int8=int8, verify_samples=200, mcu="off")
    export_policy(decisive_policy(name, OBS_SHAPE, 5), out, options)
    return out, int8


def test_hostile_inputs_under_sanitizers(export, tmp_path):
    directory, _ = export
    (tmp_path / "harness.c").write_text(HARNESS)
    program = build(
        [tmp_path / "harness.c", directory / "policy.c"],
        tmp_path / "harness",
        shared=False,
        extra_flags=[*SANITIZE_FLAGS, f"-I{directory}"],
    )
    result = subprocess.run([str(program)], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0 and "checked 0 failures" in result.stdout, result.stdout + result.stderr


def test_header_states_the_bound_the_selftest_meets(export, tmp_path):
    directory, int8 = export
    header = (directory / "policy.h").read_text()
    bound = float(re.search(r"#define GS_SELFTEST_BOUND \(?([0-9.e+-]+)f", header).group(1))
    library = build([directory / "policy.c"], tmp_path / "policy.so", extra_flags=[f"-I{directory}"])
    error = selftest_error(library)
    assert 0.0 <= error <= bound <= 1e-5
    assert ("int8 outputs this export verified" in header) == int8


def test_a_nan_in_the_embedded_golden_outputs_is_not_hidden(export, tmp_path):
    directory, _ = export
    source = (directory / "policy.c").read_text()
    # the first expected logit of the first golden vector becomes NaN: the self-test must report it
    poisoned = re.sub(r"(gs_golden_logits\[\d+\] = \{\s*)[^,]+", r"\1NAN", source, count=1)
    assert poisoned != source
    (tmp_path / "policy.c").write_text(poisoned)
    library = build([tmp_path / "policy.c"], tmp_path / "poisoned.so", extra_flags=[f"-I{directory}"])
    assert selftest_error(library) == np.inf
