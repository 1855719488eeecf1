"""Names and paths a user types: control characters have no place in them (a newline in a path ends a
line of a script or a log; an escape sequence rewrites the terminal that shows an error message)."""

from __future__ import annotations

import re
import unicodedata


def control_character(text: str) -> str | None:
    """The first control character (or line / paragraph separator) in `text` as "U+XXXX", else None."""
    for character in text:
        if unicodedata.category(character) in ("Cc", "Zl", "Zp"):
            return f"U+{ord(character):04X}"
    return None


def path_component(text: str) -> str:
    """`text` as one safe file name: every character outside letters, digits and _.+- becomes _ (so no
    path separator, no control character); "", "." and ".." become "_" (used for default run names)."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", text)
    return "_" if safe in ("", ".", "..") else safe
