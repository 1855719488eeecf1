"""The radio message: packing, fragmenting, integrity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deploy.errors import ExportError
from deploy.radio import P2P_MAX_PAYLOAD, crc16, message_format, pack, unpack


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


@given(
    st.integers(1, 150).flatmap(lambda m: arrays(np.float32, m, elements=st.floats(-50, 50, width=32))),
    st.integers(0, 255),
    st.integers(0, 70000),
    st.booleans(),
)
def test_round_trip_within_half_a_quantization_step(values, sender, step, valid):
    packets = pack(sender, step, (3, 250), valid, values)
    assert all(len(p) <= P2P_MAX_PAYLOAD for p in packets)
    assert sum(len(p) for p in packets) == message_format(len(values), "memory")["total_bytes"]
    message = unpack(packets, len(values))
    assert (message["sender"], message["step"], message["cell"], message["valid"]) == (
        sender,
        step % 65536,
        (3, 250),
        valid,
    )
    scale = max(float(np.abs(values).max()), 1e-30) / 127
    assert np.all(np.abs(message["values"] - values) <= scale / 2 * 1.0001 + 1e-12)


def test_drone_memory_fits_one_packet_and_large_ones_split():
    assert message_format(16, "memory")["packets"] == 1
    assert message_format(16, "memory")["total_bytes"] == 29
    assert len(pack(0, 0, (0, 0), True, np.ones(100, np.float32))) == 3


def test_corrupted_packet_is_refused():
    packet = bytearray(pack(1, 2, (3, 4), True, np.linspace(-1, 1, 16, dtype=np.float32))[0])
    packet[12] ^= 0x01
    with pytest.raises(ExportError, match="CRC mismatch"):
        unpack([bytes(packet)], 16)
