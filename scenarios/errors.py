"""The one exception a bad scenario raises, with a one-line message that says where and what."""

from __future__ import annotations

from typing import Any


class ScenarioError(ValueError):
    """A scenario that cannot be used.

    The message is one line, `file:line: key 'x.y': expected ..., found ...`, so the CLI can print it as is.
    """


def scenario_error(source: str, line: int | None, key: str, problem: str) -> ScenarioError:
    """Build a `ScenarioError` located at `source:line` about the dotted `key` (empty for the whole file)."""
    where = f"{source}:{line}" if line is not None else source
    subject = f" key '{key}':" if key else ""
    return ScenarioError(f"{where}:{subject} {problem}".replace("\n", " "))


def shown(value: Any, limit: int = 40) -> str:
    """A short one-line rendering of a YAML value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
