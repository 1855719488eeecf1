"""`gridswarm runs compare`: curves as the mean and spread over seeds, final metrics per run and group."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gridswarm.cli import main
from marl.compare import group_curve, group_runs, load_run, smoothed_curve


def make_run(root: Path, name: str, model: str, seed: int, csr: list[float], evaluation=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"train_config": {"model": model, "seed": seed}, "scenario": "bottleneck"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"update": u + 1, "agent_steps": 100 * (u + 1), "CSR": c} for u, c in enumerate(csr)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if evaluation is not None:
        (run / "eval.json").write_text(json.dumps(evaluation))
    return run


@given(
    values=st.lists(st.floats(0, 1), min_size=1, max_size=30),
    window=st.integers(1, 12),
)
def test_the_smoothed_curve_is_the_trailing_mean(tmp_path_factory, values, window):
    run = load_run(make_run(tmp_path_factory.mktemp("r"), "a", "srmt", 0, values))
    steps, smooth = smoothed_curve(run, "CSR", window)
    assert steps.tolist() == [100 * (i + 1) for i in range(len(values))]
    expected = [np.mean(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]
    np.testing.assert_allclose(smooth, expected, atol=1e-12)


def test_a_group_curve_is_the_mean_and_std_over_seeds(tmp_path):
    runs = [load_run(make_run(tmp_path, f"s{s}", "srmt", s, [v] * 5)) for s, v in enumerate((0.2, 0.6, 1.0))]
    steps, mean, std = group_curve(runs, "CSR", 3)
    assert steps.tolist() == [100, 200, 300, 400, 500]
    np.testing.assert_allclose(mean, 0.6)
    np.testing.assert_allclose(std, np.std([0.2, 0.6, 1.0]))
    # a shorter run limits the common range
    shorter = load_run(make_run(tmp_path, "short", "srmt", 3, [0.0] * 3))
    assert group_curve([*runs, shorter], "CSR", 1)[0].tolist() == [100, 200, 300]


def test_compare_prints_final_metrics_per_run_and_per_model_and_draws_the_curves(tmp_path, capsys):
    evaluation = [
        {"variant": "L=3", "CSR": 1.0},
        {"variant": "L=4", "CSR": 0.5},
        {"variant": "mean", "CSR": 0.75},
    ]
    runs = [
        make_run(tmp_path, "srmt-s0", "srmt", 0, [0.1, 0.5], evaluation),
        make_run(tmp_path, "srmt-s1", "srmt", 1, [0.2, 0.4, 0.6, 0.8]),
        make_run(tmp_path, "rmt-s0", "rmt", 0, [0.3, 0.3]),
    ]
    assert set(group_runs([load_run(r) for r in runs])) == {"srmt", "rmt"}
    out = tmp_path / "plot.png"
    assert main(["runs", "compare", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert any("srmt-s0" in line and "0.75" in line and "eval" in line for line in lines)
    assert any("srmt-s1" in line and "0.5" in line and "last 4 updates" in line for line in lines)
    assert any("srmt: 2 seeds" in line and "0.625 ± 0.12" in line for line in lines)
    assert not any(line.startswith("rmt:") for line in lines)  # one seed: no group row
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_directory_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["runs", "compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path) in err and "\n" not in err


@pytest.mark.parametrize("smooth", ["0", "-3"])
def test_a_bad_smoothing_window_is_refused(tmp_path, capsys, smooth):
    run = make_run(tmp_path, "a", "srmt", 0, [0.5])
    with pytest.raises(SystemExit) as refused:  # while parsing
        main(["runs", "compare", str(run), "--smooth", smooth])
    assert refused.value.code == 2
    assert "--smooth" in capsys.readouterr().err
