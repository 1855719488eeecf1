"""The memory tests run tiny tensors: one torch thread avoids thread hand-off costs on a shared CPU."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every memory test runs with `one_torch_thread` (tests/conftest.py)."""
