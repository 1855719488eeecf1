"""benchmarks/lmapf_protocol.py: the published numbers the tables quote are the benchmark's raw data."""

import re

import pytest

from tests.benchmarks.helpers import RESULTS, benchmark_script


def read_section(lines: list[str], section: str) -> dict[str, dict[int, float]]:
    """One section of published-results.txt: method -> agents -> avg_throughput."""
    start = lines.index(f"## {section}")
    counts = [int(token) for token in lines[start + 1].split() if token.isdigit()]
    table = {}
    for line in lines[start + 2 :]:
        if not line.strip() or line.startswith(("mean", "grid", "#")):
            break
        name, *values = line.split()
        table[name] = dict(
            zip(counts, (float(v) for v in values if re.fullmatch(r"\d+\.\d+", v)), strict=False)
        )
    return table


def test_the_quoted_results_equal_the_benchmarks_raw_data():
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS} absent")
    lines = RESULTS.read_text().splitlines()
    with benchmark_script("lmapf_protocol") as protocol:
        quoted = protocol.PUBLISHED
    assert set(quoted) == {"LMAPF 01-random", "LMAPF 02-mazes", "LMAPF 03-warehouse", "LMAPF 04-movingai"}
    for section, methods in quoted.items():
        published = read_section(lines, section)
        for method, cells in methods.items():
            assert cells == published[method], (section, method)


def test_a_cell_is_the_mean_and_its_95_percent_interval():
    with benchmark_script("lmapf_protocol") as protocol:
        assert protocol.mean_and_interval([1.0, 2.0, 3.0, 4.0]) == "2.500 ± 1.265"  # 1.96 * 1.291 / 2
        assert protocol.mean_and_interval([0.5] * 128) == "0.500 ± 0.000"
