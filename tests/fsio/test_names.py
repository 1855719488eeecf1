"""Names a user types become one safe file name, and control characters are found wherever they hide."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fsio import control_character, path_component


@given(text=st.text(max_size=60))
def test_a_path_component_is_one_plain_name_inside_its_directory(text):
    name = path_component(text)
    assert "/" not in name and "\0" not in name and name not in ("", ".", "..")
    assert control_character(name) is None
    assert (Path("/runs") / name).resolve().parent == Path("/runs")


@given(
    before=st.text(max_size=5),
    after=st.text(max_size=5),
    code=st.sampled_from([0x0A, 0x0D, 0x1B, 0x85, 0x2028]),
)
def test_control_characters_are_found_anywhere(before, after, code):
    assert control_character(before + chr(code) + after) is not None
