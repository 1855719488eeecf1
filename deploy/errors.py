"""Errors of the export pipeline that are meant for the user (printed as one line by the CLI)."""

from __future__ import annotations


class ExportError(ValueError):
    """The policy, checkpoint or option cannot be exported; the message says what and what was expected."""


class UnsupportedOpError(ExportError):
    """The policy uses an operation the C runtime does not implement."""


class BudgetError(ExportError):
    """The exported policy exceeds a flash, RAM or time budget of the target."""


class UnsafePlanError(ExportError):
    """A waypoint plan brings two drones closer than the safety distance."""
