"""The radio message a drone broadcasts each step: its cell and its message vector (memory) as int8.

Layout (little-endian), one Crazyflie P2P packet (at most 60 bytes of payload) per fragment:

    offset  size  field
    0       1     version (RADIO_VERSION)
    1       2     sender id (uint16, drone index 0..65535)
    3       2     step (uint16, wraps)
    5       2     row (uint16)
    7       2     col (uint16)
    9       1     flags: bit 0 valid (0 = the sender reset this step and sends nothing usable),
                  bits 4..7 fragment index
    10      4     scale (float32): value = int8 * scale, symmetric, scale = max|value| / 127
    14      n     int8 values of this fragment (at most 44)
    14+n    2     CRC-16/CCITT-FALSE of bytes 0..14+n-1

A message of M values needs ceil(M / 44) packets; the drone preset (M = 16) fits one 32-byte packet.
A message is representable when every value is finite and 127 * scale is a finite float32; `pack` refuses
anything else, and `unpack` refuses a scale that is not finite and positive or whose values would overflow.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from deploy.errors import ExportError

RADIO_VERSION = 2
FIELD_MAX = 0xFFFF  # sender, row and col are uint16
P2P_MAX_PAYLOAD = 60
_HEADER = struct.Struct("<BHHHHBf")
_CRC = struct.Struct("<H")
VALUES_PER_PACKET = P2P_MAX_PAYLOAD - _HEADER.size - _CRC.size


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the variant with a public check value 0x29B1."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def quantize(values: np.ndarray) -> tuple[float, np.ndarray]:
    """(M,) float -> (scale, int8 (M,)) with values ~= int8 * scale (finite values)."""
    scales, q = quantize_each(np.asarray(values, dtype=np.float32)[None])
    return float(scales[0]), q[0]


def quantize_each(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, M) float, one message per row -> (scales (A,) float32, int8 (A, M)) with each row ~= int8 * its
    scale: the scale is the row's largest magnitude / 127 (1 for an all-zero row)."""
    values = np.asarray(values, dtype=np.float32)
    peaks = np.abs(values).max(axis=1, initial=0.0).astype(np.float64)  # (A,)
    scales = np.where(peaks > 0, peaks / 127.0, 1.0).astype(np.float32)
    return scales, np.clip(np.rint(values / scales[:, None]), -127, 127).astype(np.int8)


def representable_scale(scale: float) -> bool:
    """Whether int8 * scale stays a finite float32 for every int8 value in [-127, 127]."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.float32(scale) > 0 and np.isfinite(np.float32(scale) * np.float32(127)))


def pack(sender: int, step: int, cell: tuple[int, int], valid: bool, values: np.ndarray) -> list[bytes]:
    """The packets of one message; ExportError for a field out of range or values it cannot carry."""
    for name, field in (("sender", sender), ("row", cell[0]), ("col", cell[1])):
        if not 0 <= field <= FIELD_MAX:
            raise ExportError(f"radio message: {name} {field} is outside 0..{FIELD_MAX}")
    values = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise ExportError("radio message: the values include NaN or infinity")
    scale, q = quantize(values)
    if not representable_scale(scale):
        raise ExportError(f"radio message: values up to {np.abs(values).max():.3g} overflow int8 * scale")
    packets = []
    for fragment, start in enumerate(range(0, max(len(q), 1), VALUES_PER_PACKET)):
        flags = int(valid) | (fragment << 4)
        body = _HEADER.pack(RADIO_VERSION, sender, step & 0xFFFF, cell[0], cell[1], flags, scale)
        body += q[start : start + VALUES_PER_PACKET].tobytes()
        packets.append(body + _CRC.pack(crc16(body)))
    return packets


def unpack(packets: list[bytes], message_size: int) -> dict:
    """Inverse of `pack`: sender, step, cell, valid and the (M,) float32 values; checks CRC and fragments."""
    if len(packets) != packets_per_message(message_size):
        raise ExportError(
            f"a {message_size}-value message has {packets_per_message(message_size)} packets, "
            f"got {len(packets)}"
        )
    chunks = []
    for index, packet in enumerate(packets):
        count = min(VALUES_PER_PACKET, message_size - index * VALUES_PER_PACKET)
        if len(packet) != _HEADER.size + count + _CRC.size:
            raise ExportError(
                f"radio packet {index}: {len(packet)} bytes, expected {_HEADER.size + count + 2}"
            )
        body, (crc,) = packet[: -_CRC.size], _CRC.unpack(packet[-_CRC.size :])
        if crc16(body) != crc:
            raise ExportError(f"radio packet {index}: CRC mismatch")
        version, sender, step, row, col, flags, scale = _HEADER.unpack(body[: _HEADER.size])
        if version != RADIO_VERSION or flags >> 4 != index:
            raise ExportError(f"radio packet {index}: version {version}, fragment {flags >> 4}")
        if not representable_scale(scale):
            raise ExportError(f"radio packet {index}: scale {scale!r} is not a finite positive int8 scale")
        chunks.append(np.frombuffer(body[_HEADER.size :], dtype=np.int8))
    values = np.concatenate(chunks).astype(np.float32) * np.float32(scale)
    return {"sender": sender, "step": step, "cell": (row, col), "valid": bool(flags & 1), "values": values}


def check_addressable(num_agents: int, grid_shape: tuple[int, int]) -> None:
    """ExportError when a drone's id or a cell's row or column would not fit the message's uint16 fields."""
    if num_agents - 1 > FIELD_MAX:
        raise ExportError(f"{num_agents} drones: the radio message numbers senders 0..{FIELD_MAX}")
    if max(grid_shape) - 1 > FIELD_MAX:
        raise ExportError(
            f"a {grid_shape[0]} x {grid_shape[1]} map: the radio message carries rows and columns "
            f"0..{FIELD_MAX}"
        )


def packets_per_message(message_size: int) -> int:
    return max(1, math.ceil(message_size / VALUES_PER_PACKET))


def message_format(message_size: int, source: str | None) -> dict:
    """The manifest's description of the radio message."""
    packets = packets_per_message(message_size)
    return {
        "source": source,
        "values": message_size,
        "encoding": "int8 symmetric, one float32 scale per message: value = int8 * scale",
        "version": RADIO_VERSION,
        "max_field": FIELD_MAX,
        "fields": [
            ["version", 0, 1, "uint8"],
            ["sender", 1, 2, "uint16"],
            ["step", 3, 2, "uint16"],
            ["row", 5, 2, "uint16"],
            ["col", 7, 2, "uint16"],
            ["flags", 9, 1, "bit0 valid, bits4-7 fragment"],
            ["scale", 10, 4, "float32"],
            ["values", 14, "n", "int8"],
            ["crc16_ccitt_false", "14+n", 2, "uint16"],
        ],
        "little_endian": True,
        "packets": packets,
        "bytes_per_packet_max": _HEADER.size + min(message_size, VALUES_PER_PACKET) + _CRC.size,
        "total_bytes": packets * (_HEADER.size + _CRC.size) + message_size,
        "p2p_max_payload": P2P_MAX_PAYLOAD,
        "fits_one_packet": packets == 1,
    }


def c_declarations(message_size: int) -> list[str]:
    """policy.h lines: the radio constants and the pack/unpack prototypes."""
    return [
        f"#define GS_RADIO_PACKETS {packets_per_message(message_size)}",
        f"#define GS_RADIO_VALUES_PER_PACKET {VALUES_PER_PACKET}",
        f"#define GS_RADIO_PACKET_MAX {P2P_MAX_PAYLOAD}",
        f"#define GS_RADIO_VERSION {RADIO_VERSION}",
        f"#define GS_RADIO_HEADER {_HEADER.size}",
        f"#define GS_RADIO_FIELD_MAX {FIELD_MAX}",
        '/* This drone\'s message as GS_RADIO_PACKETS P2P packets (layout in manifest.json "radio");',
        "   lengths[i] = bytes of packet i; returns the total bytes, or -1 (every length 0, send nothing)",
        "   for sender, row or col outside 0..65535, a NaN or infinite value, or values int8 can't carry. */",
        "int gs_radio_pack(int sender, int step, int row, int col, int valid, const float *message,",
        "                  unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX], int *lengths);",
        "/* A received message; returns 0, or -1 for a wrong length, CRC, version, fragment order, or a",
        "   scale that is not finite and positive or would overflow (message is then left unchanged). */",
        "int gs_radio_unpack(const unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX],",
        "                    const int *lengths, int *sender, int *step, int *row, int *col, int *valid,",
        "                    float *message);",
    ]
