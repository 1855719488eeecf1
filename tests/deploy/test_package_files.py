"""The C runtime, firmware and flight scripts are real package files: compilable, lintable, shipped."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from deploy.cbuild import STRICT_FLAGS, compiler

DEPLOY = Path(resources.files("deploy"))
ROOT = Path(__file__).resolve().parents[2]
KERNEL_FILES = sorted(p.name for p in (DEPLOY / "runtime").glob("gs_*.c") if p.name != "gs_radio.c")


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_each_kernel_file_compiles_on_its_own(name):
    source = DEPLOY / "runtime" / name
    command = [compiler(), *STRICT_FLAGS, "-Wno-unused-function", "-fsyntax-only", str(source)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_file_the_exporter_copies_is_declared_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [
        p.relative_to(DEPLOY).as_posix()
        for folder in ("runtime", "firmware", "scripts")
        for p in (DEPLOY / folder).glob("*")
        if p.is_file()
    ]
    assert shipped and all(
        any(fnmatch.fnmatch(path, pattern) for pattern in patterns["deploy"]) for path in shipped
    )
