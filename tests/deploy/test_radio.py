"""The radio message: packing, fragmenting, integrity."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deploy.errors import ExportError
from deploy.radio import P2P_MAX_PAYLOAD, crc16, message_format, pack, quantize_each, unpack


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


@given(
    st.integers(1, 150).flatmap(lambda m: arrays(np.float32, m, elements=st.floats(-50, 50, width=32))),
    st.integers(0, 65535),
    st.integers(0, 70000),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    st.booleans(),
)
def test_round_trip_within_half_a_quantization_step(values, sender, step, cell, valid):
    packets = pack(sender, step, cell, valid, values)
    assert all(len(p) <= P2P_MAX_PAYLOAD for p in packets)
    assert sum(len(p) for p in packets) == message_format(len(values), "memory")["total_bytes"]
    message = unpack(packets, len(values))
    assert (message["sender"], message["step"], message["cell"], message["valid"]) == (
        sender,
        step % 65536,
        cell,
        valid,
    )
    scale = max(float(np.abs(values).max()), 1e-30) / 127
    assert np.all(np.abs(message["values"] - values) <= scale / 2 * 1.0001 + 1e-12)


@given(
    st.tuples(st.integers(1, 6), st.integers(1, 40)).flatmap(
        lambda shape: arrays(np.float32, shape, elements=st.floats(-50, 50, width=32, allow_subnormal=False))
    )
)
def test_batched_quantization_delivers_what_the_packets_carry(messages):
    # the closed-loop rollout decodes every drone's message at once; each row must be what the wire delivers
    scales, q = quantize_each(messages)
    decoded = q.astype(np.float32) * scales[:, None]
    for row, values in enumerate(messages):
        carried = unpack(pack(0, 0, (0, 0), True, values), len(values))["values"]
        np.testing.assert_array_equal(decoded[row], carried)


def test_drone_memory_fits_one_packet_and_large_ones_split():
    assert message_format(16, "memory")["packets"] == 1
    assert message_format(16, "memory")["total_bytes"] == 32
    assert len(pack(0, 0, (0, 0), True, np.ones(100, np.float32))) == 3


def test_corrupted_packet_is_refused():
    packet = bytearray(pack(1, 2, (3, 4), True, np.linspace(-1, 1, 16, dtype=np.float32))[0])
    packet[12] ^= 0x01
    with pytest.raises(ExportError, match="CRC mismatch"):
        unpack([bytes(packet)], 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, np.finfo(np.float32).max])
def test_values_the_message_cannot_carry_are_refused(bad):
    values = np.linspace(-1, 1, 16, dtype=np.float32)
    values[5] = bad
    with pytest.raises(ExportError, match=r"radio message: .*(NaN or infinity|overflow)"):
        pack(1, 2, (3, 4), True, values)


@pytest.mark.parametrize("fields", [(65536, (0, 0)), (0, (65536, 0)), (0, (0, 70000)), (-1, (0, 0))])
def test_fields_past_uint16_are_refused_not_cut(fields):
    sender, cell = fields
    with pytest.raises(ExportError, match=r"radio message: (sender|row|col) -?\d+ is outside 0\.\.65535"):
        pack(sender, 0, cell, True, np.ones(16, np.float32))


@pytest.mark.parametrize("scale", [np.nan, np.inf, -1.0, 0.0, 3.0e38])
def test_a_scale_that_is_not_a_finite_positive_int8_scale_is_refused(scale):
    body = bytearray(pack(1, 2, (3, 4), True, np.ones(16, np.float32))[0][:-2])
    body[10:14] = struct.pack("<f", scale)
    packet = bytes(body) + struct.pack("<H", crc16(bytes(body)))
    with pytest.raises(ExportError, match=r"scale .* is not a finite positive int8 scale"):
        unpack([packet], 16)


def test_a_packet_of_the_wrong_length_is_refused():
    packet = pack(1, 2, (3, 4), True, np.ones(16, np.float32))[0]
    with pytest.raises(ExportError, match="radio packet 0: 31 bytes, expected 32"):
        unpack([packet[:-1]], 16)
