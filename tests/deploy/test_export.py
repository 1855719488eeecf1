"""End to end: export a drone policy, then check every artifact independently of the exporter."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import memory
from deploy.agent import AgentStep, MessageEncoder
from deploy.cbuild import SANITIZE_FLAGS, CFunction, build
from deploy.ccompile import TensorSpec, compile_module, weight_bytes
from deploy.errors import BudgetError, ExportError, UnsupportedOpError
from deploy.export import ExportOptions, export_policy
from deploy.mcu import FIRMWARE_FILES, missing_tools
from deploy.verify import compare, sample_inputs
from tests.deploy.helpers import decisive_policy

onnxruntime = pytest.importorskip("onnxruntime")

OBS_SHAPE = (3, 11, 11)


@pytest.fixture(scope="module")
def srmt():
    return memory.make_policy("srmt", OBS_SHAPE, preset="drone", scope="local", seed=3)


@pytest.fixture(scope="module")
def exported(srmt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "srmt"
    export_policy(srmt, out, ExportOptions(verify_samples=1000))
    return out


def golden(exported: Path) -> dict[str, np.ndarray]:
    with np.load(exported / "golden.npz") as data:
        return {name: data[name] for name in data.files}


def test_manifest_hashes_every_file(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    on_disk = sorted(
        p.relative_to(exported).as_posix()
        for p in exported.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    firmware = [f"firmware/{name}" for name in (*FIRMWARE_FILES, "policy_selftest.elf", "selftest_data.h")]
    expected = [
        "golden.npz",
        "policy.c",
        "policy.h",
        "policy.onnx",
        *(firmware if not missing_tools() else []),
    ]
    assert sorted(manifest["files"]) == on_disk == sorted(expected)
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["verification"]["c"]["samples"] >= 1000
    assert manifest["radio"]["fits_one_packet"] and manifest["radio"]["total_bytes"] <= 60
    assert (
        manifest["estimate"]["weight_bytes"] <= 128 * 1024 and manifest["estimate"]["estimated_rate_hz"] >= 10
    )
    assert manifest["mcu"]["measured"] == (not missing_tools())


def test_onnx_matches_torch_on_golden_vectors(exported, srmt):
    data = golden(exported)
    step = AgentStep(srmt, 8)
    session = onnxruntime.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    assert inputs == list(step.example_inputs())
    for g in range(len(data["obs"])):
        feed = {name: data[name][g : g + 1] for name in inputs}
        found = session.run(step.output_names, feed)
        with torch.no_grad():
            expected = step(**{k: torch.from_numpy(v) for k, v in feed.items()})
        for f, e in zip(found, expected, strict=True):
            np.testing.assert_allclose(f, e.numpy(), atol=1e-5)


def test_exported_c_step_api_matches_torch(exported, srmt, tmp_path):
    """gs_policy_step (the drone API: state vector, neighbour count) against torch on fresh samples."""
    (tmp_path / "policy.h").write_bytes((exported / "policy.h").read_bytes())
    library = build([exported / "policy.c"], tmp_path / "policy.so", extra_flags=[f"-I{tmp_path}"])
    lib = __import__("ctypes").CDLL(str(library))
    floats = __import__("ctypes").POINTER(__import__("ctypes").c_float)
    step = AgentStep(srmt, 8)
    samples = sample_inputs(step, 200, seed=11)

    def drone_step(inputs):
        state = np.concatenate([inputs["memory"].ravel(), inputs["history"].ravel()]).astype(np.float32)
        count = int(inputs["message_mask"].sum())
        messages = np.ascontiguousarray(inputs["messages"][0], np.float32)  # valid rows come first
        logits, new_state = np.zeros(5, np.float32), np.zeros_like(state)
        obs = np.ascontiguousarray(inputs["obs"], np.float32)
        action = lib.gs_policy_step(
            obs.ctypes.data_as(floats),
            state.ctypes.data_as(floats),
            messages.ctypes.data_as(floats),
            count,
            int(inputs["reset"][0]),
            logits.ctypes.data_as(floats),
            new_state.ctypes.data_as(floats),
        )
        assert action == int(np.argmax(logits))
        return [logits[None], new_state[None, :16], new_state[None, 16:].reshape(1, 4, 16)]

    agreement = compare(step, drone_step, samples)
    assert agreement.max_abs_error <= 1e-5 and agreement.same_action_outside_ties == 1.0


def test_c_builds_clean_and_selftest_passes_under_sanitizers(exported, tmp_path):
    (tmp_path / "policy.h").write_bytes((exported / "policy.h").read_bytes())
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "policy.h"\n'
        "int main(void) {\n"
        "    static float obs[GS_OBS_SIZE], state[GS_STATE_SIZE], next[GS_STATE_SIZE];\n"
        "    static float messages[GS_MAX_NEIGHBOURS * GS_MESSAGE_SIZE], logits[GS_NUM_ACTIONS];\n"
        "    for (int k = 0; k <= GS_MAX_NEIGHBOURS; ++k) {\n"
        "        obs[k] = 1.0f; messages[k] = 0.5f;\n"
        "        int action = gs_policy_step(obs, state, messages, k, k == 0, logits, next);\n"
        "        if (action < 0 || action >= GS_NUM_ACTIONS) return 3;\n"
        "        for (int i = 0; i < GS_STATE_SIZE; ++i) state[i] = next[i];\n"
        "    }\n"
        "    static unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX];\n"
        "    int lengths[GS_RADIO_PACKETS], sender, step, row, col, valid;\n"
        "    gs_radio_pack(1, 2, 3, 4, 1, state, packets, lengths);\n"
        "    if (gs_radio_unpack(packets, lengths, &sender, &step, &row, &col, &valid, next)) return 4;\n"
        '    printf("%.9e\\n", (double)gs_policy_selftest());\n'
        "    return 0;\n}\n"
    )
    program = build(
        [tmp_path / "main.c", exported / "policy.c"],
        tmp_path / "selftest",
        shared=False,
        extra_flags=[*SANITIZE_FLAGS, f"-I{tmp_path}"],
    )
    result = subprocess.run([str(program)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert 0.0 <= float(result.stdout) <= 1e-5


def test_int8_export_keeps_actions(tmp_path):
    policy = decisive_policy("gru", OBS_SHAPE, 5)
    manifest = export_policy(policy, tmp_path / "gru8", ExportOptions(int8=True, formats=("c",)))
    assert manifest["estimate"]["weight_bytes"] <= 16 * 1024
    step = AgentStep(policy, 8)
    spec_in = [TensorSpec(s["name"], tuple(s["shape"])) for s in manifest["interface"]["inputs"]]
    spec_out = [TensorSpec(s["name"], tuple(s["shape"])) for s in manifest["interface"]["outputs"]]
    (tmp_path / "policy.h").write_bytes((tmp_path / "gru8" / "policy.h").read_bytes())
    library = build([tmp_path / "gru8" / "policy.c"], tmp_path / "gru8.so", extra_flags=[f"-I{tmp_path}"])
    function = CFunction(library, "gs_policy_forward", spec_in, spec_out)
    samples = sample_inputs(step, 1000, seed=21)
    agreement = compare(step, lambda inputs: function(*[inputs[s.name] for s in spec_in]), samples)
    assert agreement.same_action >= 0.99
    assert agreement.max_abs_error > 1e-6  # the weights really are quantized


def test_over_budget_fails_and_writes_nothing(tmp_path):
    big = memory.make_policy("gru", OBS_SHAPE, preset="drone", width=128)
    with pytest.raises(
        BudgetError,
        match=r"float weights alone take \d+ B, over the crazyflie-stm32f405 flash budget of 131072 B; try",
    ):
        export_policy(big, tmp_path / "big")
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_kept(tmp_path, srmt):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_policy(srmt, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


class HardswishHead(torch.nn.Linear):
    """A head with an activation the C runtime does not implement."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.hardswish(super().forward(x))


def test_unsupported_layer_fails_and_writes_nothing(tmp_path):
    policy = memory.make_policy("empty", OBS_SHAPE, preset="drone")
    policy.policy_head = HardswishHead(policy.config.width, policy.config.num_actions)
    with pytest.raises(UnsupportedOpError, match=r"in module 'policy\.policy_head' \(HardswishHead\): no C"):
        export_policy(policy, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


def test_neighbour_attention_exports_its_message_encoder(tmp_path):
    policy = memory.make_policy("neighbour_attention", OBS_SHAPE, preset="drone", scope="local", seed=4)
    manifest = export_policy(policy, tmp_path / "na", ExportOptions(formats=("c",), verify_samples=100))
    assert (
        manifest["interface"]["functions"][1]
        == "void gs_policy_message(const float *in_obs, float *out_message)"
    )
    (tmp_path / "policy.h").write_bytes((tmp_path / "na" / "policy.h").read_bytes())
    library = build([tmp_path / "na" / "policy.c"], tmp_path / "na.so", extra_flags=[f"-I{tmp_path}"])
    encode = CFunction(
        library,
        "gs_policy_message",
        [TensorSpec("obs", (1, *OBS_SHAPE))],
        [TensorSpec("message", (1, policy.config.width))],
    )
    obs = (torch.rand(20, *OBS_SHAPE, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        expected = policy.encode(obs).numpy()
    found = np.concatenate([encode(o[None].numpy())[0] for o in obs])
    np.testing.assert_allclose(found, expected, atol=1e-5)

    # the encoder's weights are stored once although both functions use them
    step = AgentStep(policy, 8)
    programs = [
        compile_module(step, step.example_inputs(), step.output_names),
        compile_module(MessageEncoder(policy), {"obs": obs[:1]}, ["message"], function="gs_policy_message"),
    ]
    assert manifest["estimate"]["weight_bytes"] == weight_bytes(programs)
    assert weight_bytes(programs) < programs[0].weight_bytes + programs[1].weight_bytes


def test_c_radio_matches_the_python_reference(exported, tmp_path):
    import ctypes

    from deploy.radio import pack, unpack

    (tmp_path / "policy.h").write_bytes((exported / "policy.h").read_bytes())
    lib = ctypes.CDLL(
        str(build([exported / "policy.c"], tmp_path / "radio.so", extra_flags=[f"-I{tmp_path}"]))
    )
    floats = ctypes.POINTER(ctypes.c_float)
    rng = np.random.default_rng(4)
    for trial in range(50):
        message = (rng.standard_normal(16) * rng.uniform(0.01, 30)).astype(np.float32)
        if trial == 0:
            message[:] = 0.0
        packets = np.zeros((1, 60), np.uint8)
        lengths = np.zeros(1, np.int32)
        total = lib.gs_radio_pack(
            7,
            70000 + trial,
            12,
            250,
            trial % 2,
            message.ctypes.data_as(floats),
            packets.ctypes.data_as(ctypes.c_void_p),
            lengths.ctypes.data_as(ctypes.c_void_p),
        )
        expected = pack(7, 70000 + trial, (12, 250), bool(trial % 2), message)
        assert total == 32 and bytes(packets[0, : lengths[0]]) == expected[0]
        fields = [ctypes.c_int() for _ in range(5)]
        decoded = np.zeros(16, np.float32)
        status = lib.gs_radio_unpack(
            packets.ctypes.data_as(ctypes.c_void_p),
            lengths.ctypes.data_as(ctypes.c_void_p),
            *[ctypes.byref(f) for f in fields],
            decoded.ctypes.data_as(floats),
        )
        reference = unpack(expected, 16)
        assert status == 0 and [f.value for f in fields] == [7, (70000 + trial) % 65536, 12, 250, trial % 2]
        np.testing.assert_array_equal(decoded, reference["values"])
        packets[0, 17] ^= 0x10
        assert (
            lib.gs_radio_unpack(
                packets.ctypes.data_as(ctypes.c_void_p),
                lengths.ctypes.data_as(ctypes.c_void_p),
                *[ctypes.byref(f) for f in fields],
                decoded.ctypes.data_as(floats),
            )
            == -1
        )
