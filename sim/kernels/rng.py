"""numpy-exact random streams inside numba: `default_rng(seed)` (SeedSequence -> PCG64) and
`Generator.integers(0, n)`, bit for bit, over plain uint64 state arrays.

One stream is a row of `STREAM_WORDS` uint64: [state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger]
— the 128-bit PCG state and increment, and numpy's buffered upper half of the last 64-bit draw (numpy
serves 32-bit draws from halves of one 64-bit output, so the buffer is part of the stream's state).
Holding streams as arrays instead of `Generator` objects makes seeding 10k agents a microsecond affair.
"""

from __future__ import annotations

import numpy as np
from numba import njit

STREAM_WORDS = 6

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S16 = np.uint64(16)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_PCG_MULT_HI = np.uint64(2549297995355413924)
_PCG_MULT_LO = np.uint64(4865540595714422341)
# SeedSequence's hash constants (numpy/random/bit_generator.pyx).
_INIT_A = np.uint64(0x43B0D7E5)
_MULT_A = np.uint64(0x931E8875)
_INIT_B = np.uint64(0x8B51F9DD)
_MULT_B = np.uint64(0x58F38DED)
_MIX_MULT_L = np.uint64(0xCA01F9DD)
_MIX_MULT_R = np.uint64(0x4973F715)
_POOL_SIZE = 4


@njit(cache=True)
def _mulhi64(a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    a_lo = a & _MASK32
    a_hi = a >> _S32
    b_lo = b & _MASK32
    b_hi = b >> _S32
    cross_1 = a_lo * b_hi
    cross_2 = a_hi * b_lo
    middle = ((a_lo * b_lo) >> _S32) + (cross_1 & _MASK32) + (cross_2 & _MASK32)
    return a_hi * b_hi + (cross_1 >> _S32) + (cross_2 >> _S32) + (middle >> _S32)


@njit(cache=True)
def _pcg_step(stream):
    """state = state * MULT + inc (mod 2^128). stream: (STREAM_WORDS,) uint64."""
    s_hi = stream[0]
    s_lo = stream[1]
    lo = s_lo * _PCG_MULT_LO
    hi = _mulhi64(s_lo, _PCG_MULT_LO) + s_hi * _PCG_MULT_LO + s_lo * _PCG_MULT_HI
    new_lo = lo + stream[3]
    carry = _ONE if new_lo < lo else _ZERO
    stream[0] = hi + stream[2] + carry
    stream[1] = new_lo


@njit(cache=True)
def next_uint64(stream):
    """PCG64 XSL-RR output after one step, like numpy's `pcg64_next64`. stream: (STREAM_WORDS,) uint64."""
    _pcg_step(stream)
    xored = stream[0] ^ stream[1]
    rot = stream[0] >> np.uint64(58)
    return (xored >> rot) | (xored << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(cache=True)
def next_uint32(stream):
    """numpy's `pcg64_next32`: the low half of a fresh 64-bit draw, the high half buffered for next time."""
    if stream[4] != _ZERO:
        stream[4] = _ZERO
        return stream[5]
    value = next_uint64(stream)
    stream[4] = _ONE
    stream[5] = value >> _S32
    return value & _MASK32


@njit(cache=True)
def bounded_below(stream, n):
    """`Generator.integers(0, n)` for 1 <= n <= 2^32 (numpy's buffered Lemire method): an int64 in [0, n).
    n == 1 consumes nothing, as in numpy."""
    rng = np.uint64(n - 1)
    if rng == _ZERO:
        return 0
    if rng == _MASK32:
        return np.int64(next_uint32(stream))
    rng_excl = rng + _ONE
    product = next_uint32(stream) * rng_excl
    leftover = product & _MASK32
    if leftover < rng_excl:
        threshold = (_MASK32 - rng) % rng_excl
        while leftover < threshold:
            product = next_uint32(stream) * rng_excl
            leftover = product & _MASK32
    return np.int64(product >> _S32)


@njit(cache=True)
def _hashmix(value, hash_const):
    """SeedSequence's hashmix over uint32 values held in uint64; hash_const: (1,) uint64, advanced."""
    value = (value ^ hash_const[0]) & _MASK32
    hash_const[0] = (hash_const[0] * _MULT_A) & _MASK32
    value = (value * hash_const[0]) & _MASK32
    return value ^ (value >> _S16)


@njit(cache=True)
def _mix(x, y):
    result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
    return result ^ (result >> _S16)


@njit(cache=True)
def seed_stream(stream, seed):
    """stream <- the state of `np.random.default_rng(seed)` for 0 <= seed < 2^32.
    stream: (STREAM_WORDS,) uint64, overwritten."""
    pool = np.empty(_POOL_SIZE, np.uint64)
    hash_const = np.empty(1, np.uint64)
    hash_const[0] = _INIT_A
    pool[0] = _hashmix(np.uint64(seed), hash_const)
    for i in range(1, _POOL_SIZE):
        pool[i] = _hashmix(_ZERO, hash_const)
    for i_src in range(_POOL_SIZE):
        for i_dst in range(_POOL_SIZE):
            if i_src != i_dst:
                pool[i_dst] = _mix(pool[i_dst], _hashmix(pool[i_src], hash_const))
    # generate_state(4, uint64): eight uint32 words, paired little-endian into uint64.
    words = np.empty(4, np.uint64)
    state_const = _INIT_B
    for i_word in range(8):
        value = (pool[i_word % _POOL_SIZE] ^ state_const) & _MASK32
        state_const = (state_const * _MULT_B) & _MASK32
        value = (value * state_const) & _MASK32
        value ^= value >> _S16
        if i_word % 2 == 0:
            words[i_word // 2] = value
        else:
            words[i_word // 2] |= value << _S32
    # pcg64_set_seed: state = 0, inc = (words[2:4] << 1) | 1, step, state += words[0:2], step.
    stream[0] = _ZERO
    stream[1] = _ZERO
    stream[2] = (words[2] << _ONE) | (words[3] >> np.uint64(63))
    stream[3] = (words[3] << _ONE) | _ONE
    _pcg_step(stream)
    lo = stream[1] + words[1]
    carry = _ONE if lo < stream[1] else _ZERO
    stream[0] = stream[0] + words[0] + carry
    stream[1] = lo
    _pcg_step(stream)
    stream[4] = _ZERO
    stream[5] = _ZERO


@njit(cache=True)
def seed_streams(streams, seeds):
    """Seeds every stream: streams (K, STREAM_WORDS) uint64 out; seeds (K,) int64 in [0, 2^32)."""
    for k in range(seeds.shape[0]):
        seed_stream(streams[k], seeds[k])
