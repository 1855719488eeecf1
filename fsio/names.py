"""Names and paths a user types: control characters have no place in them (a newline in a path ends a
line of a script or a log; an escape sequence rewrites the terminal that shows an error message)."""

from __future__ import annotations

import unicodedata


def control_character(text: str) -> str | None:
    """The first control character (or line / paragraph separator) in `text` as "U+XXXX", else None."""
    for character in text:
        if unicodedata.category(character) in ("Cc", "Zl", "Zp"):
            return f"U+{ord(character):04X}"
    return None
