"""`coercion.coerce`: the one conversion of plain values to field types (scenario fields and settings
files strict, training settings and command lines lenient)."""

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coercion import CoercionError, coerce, conforms

SCALARS = st.one_of(
    st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False), st.text(max_size=8), st.none()
)


@given(number=st.integers(-(2**70), 2**70))
def test_lenient_reads_integers_from_their_text_exactly(number: int) -> None:
    assert coerce(str(number), int, lenient=True) == number  # beyond 2**53 too: no detour through float
    assert coerce(str(number), float, lenient=True) == float(number)


@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_lenient_reads_floats_from_their_text(number: float) -> None:
    assert coerce(repr(number), float, lenient=True) == number


@given(value=SCALARS)
def test_strict_takes_only_what_the_yaml_parser_typed(value: object) -> None:
    for hint, accepts in (
        (int, type(value) is int),
        (float, type(value) in (int, float)),
        (bool, type(value) is bool),
        (str, type(value) is str),
    ):
        if accepts:  # an int read as a float is that float (2**53 + 1 rounds as float() rounds it)
            expected = float(value) if hint is float else value
            converted = coerce(value, hint)
            assert converted == expected and type(converted) is hint
        else:
            with pytest.raises(CoercionError):
                coerce(value, hint)


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        ("1e6", int, 1_000_000),
        (2.0, int, 2),
        ("no", bool, False),
        ("null", float | None, None),
        ("0.5", float | None, 0.5),
        ("linear", Literal["constant", "linear"], "linear"),
    ],
)
def test_lenient_conversions(value: object, hint: object, expected: object) -> None:
    converted = coerce(value, hint, lenient=True)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("2.5", int),
        (2.5, int),
        (True, int),
        (1, bool),
        ("maybe", bool),
        ("cosine", Literal["linear"]),
        ("x", float | None),
    ],
)
def test_lenient_still_refuses_what_is_not_of_the_type(value: object, hint: object) -> None:
    with pytest.raises(CoercionError):
        coerce(value, hint, lenient=True)


@given(items=st.lists(SCALARS, max_size=4))
def test_a_tuple_hint_takes_a_list_or_tuple_of_items_of_its_type(items: list) -> None:
    all_text = all(type(item) is str for item in items)
    for value in (items, tuple(items)):
        assert conforms(value, tuple[str, ...]) == all_text
        if all_text:
            assert coerce(value, tuple[str, ...]) == tuple(items)
    assert not conforms("a", tuple[str, ...])  # text is no list of characters
