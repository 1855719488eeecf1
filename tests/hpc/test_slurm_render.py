"""sbatch rendering: settings validation, site files, templates, and the `gridswarm slurm` dry runs."""

import re
import subprocess
from pathlib import Path

import pytest

from gridswarm.cli import main
from hpc import slurm
from hpc.errors import HpcError


def dry_run(capsys, *arguments: str) -> str:
    assert main(["slurm", *arguments, "--dry-run"]) == 0
    return capsys.readouterr().out


def test_a_train_script_carries_the_resources_the_requeue_and_the_training_command(capsys, tmp_path):
    script = dry_run(
        capsys,
        "submit",
        "bottleneck",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "4",
        "--gpus-per-node",
        "4",
        "--time",
        "1-12:00:00",
        "--partition",
        "gpu",
        "--account",
        "proj42",
        "--run-dir",
        str(tmp_path),
        "--seed",
        "7",
        "--train-args=--model gru --steps 1000",
    )
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=1-12:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj42",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@90",
        f"#SBATCH --output={tmp_path}/slurm/%x-%j.out",
    ]:
        assert line in script.splitlines(), line
    command = f"train bottleneck --model gru --steps 1000 --resume auto --out {tmp_path} --seed 7 &"
    assert command in script
    assert "srun --mpi=pmi2 " in script and "{{" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert not (tmp_path / "slurm").exists(), "a dry run must not write anything"


def test_a_sweep_runs_one_array_task_per_combination(capsys, tmp_path):
    script = dry_run(
        capsys,
        "submit",
        "random",
        "--sweep",
        "seed=0,1,2",
        "--sweep",
        "lr=1e-4,3e-4",
        "--max-parallel",
        "2",
        "--run-dir",
        str(tmp_path),
    )
    assert "#SBATCH --array=0-5%2" in script
    selection = script[script.index("case") : script.index("esac")]
    prelude = script[: script.index("srun")]
    for index, (seed, lr) in enumerate([(s, lr) for s in "012" for lr in ("1e-4", "3e-4")]):
        assert (
            f"{index}) task_arguments=(--out {tmp_path}/task-{index} --seed {seed} --set lr={lr}) ;;"
            in selection
        )
        # The case block really selects these arguments in bash.
        shown = subprocess.run(
            ["bash", "-c", prelude.split("echo ")[0] + selection + 'esac\necho "${task_arguments[@]}"'],
            env={"SLURM_ARRAY_TASK_ID": str(index), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert shown.stdout.split() == [
            "--out",
            f"{tmp_path}/task-{index}",
            "--seed",
            seed,
            "--set",
            f"lr={lr}",
        ]


def test_a_site_file_fills_what_the_command_line_leaves_out(capsys, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "partition: batch\naccount: lab\ntime: 30\nmodules: [cuda/12.4]\n"
        "setup:\n  - source /shared/venvs/gridswarm/bin/activate\nextra_directives: ['--constraint=a100']\n"
    )
    script = dry_run(capsys, "submit", "bottleneck", "--site", str(site), "--partition", "debug")
    lines = script.splitlines()
    assert "#SBATCH --partition=debug" in lines and "#SBATCH --account=lab" in lines
    assert "#SBATCH --time=30" in lines and "#SBATCH --constraint=a100" in lines
    assert lines.index("module load cuda/12.4") < lines.index("source /shared/venvs/gridswarm/bin/activate")


def test_the_launcher_comes_from_the_site_file_or_the_command_line(capsys, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("launcher: mpiexec\n")
    from_site = dry_run(capsys, "submit", "bottleneck", "--site", str(site), "--run-dir", str(tmp_path))
    launch = '-bootstrap slurm -n "$SLURM_NTASKS" '
    assert not any(line.startswith("srun") for line in from_site.splitlines())
    step_line = next(line for line in from_site.splitlines() if launch in line)
    assert step_line.split()[0].endswith("mpiexec") and step_line.endswith("&")
    from_command_line = dry_run(
        capsys, "submit", "bottleneck", "--site", str(site), "--launcher", "srun", "--run-dir", str(tmp_path)
    )
    assert "srun --mpi=pmi2 --kill-on-bad-exit=1 " in from_command_line and launch not in from_command_line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("partition: gpu\nacount: lab\n", r"line 2: unknown key 'acount' \(did you mean 'account'\?\)"),
        ("nodes: two\n", r"line 1: slurm setting nodes='two': expected an integer in \[1, 100000\]"),
        ("time: '1 day'\n", "line 1: slurm setting time='1 day'"),
        ("setup: 'source x'\n", "expected a list of single shell lines"),
        ("partition: [\n", "not valid YAML"),
        ("- a\n", "expected a mapping"),
        ("launcher: mpirun\n", "line 1: slurm setting launcher='mpirun': expected one of srun, mpiexec"),
        ("nodes: true\n", "line 1: slurm setting nodes=True: expected an integer"),
        ("gpus_per_node: 2.0\n", "line 1: slurm setting gpus_per_node=2.0: expected an integer"),
        ("modules: [gcc, 3]\n", "line 1: slurm setting modules=\\['gcc', 3\\]: expected module names"),
        ("account: 7\n", "line 1: slurm setting account=7: expected a name"),
    ],
)
def test_a_bad_site_file_is_one_line_naming_file_line_and_key(capsys, tmp_path, content, message):
    site = tmp_path / "site.yaml"
    site.write_text(content)
    assert main(["slurm", "submit", "bottleneck", "--site", str(site), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"gridswarm slurm: error: site file {site}") and error.count("\n") == 1
    with pytest.raises(HpcError, match=message):
        slurm.load_site_file(site)


def test_site_file_values_arrive_as_their_fields_types(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("time: 30\nmodules: [gcc, openmpi]\nnodes: 2\n")
    settings = slurm.resolve_settings(slurm.load_site_file(site), {})
    assert (settings.time, settings.modules, settings.nodes) == ("30", ("gcc", "openmpi"), 2)
    assert slurm.SlurmSettings(setup=["module list"]).setup == ("module list",)  # lists become tuples


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nodes", "0"], "nodes=0: expected an integer in [1, 100000]"),
        (["--partition", "gpu\n#SBATCH --qos=high"], "control character U+000A"),
        (["--partition", "gpu --qos=high"], "partition="),
        (["--time", "soon"], "time='soon'"),
        (["--array", "0-3;rm"], "--array '0-3;rm'"),
        (["--sweep", "lr"], "--sweep 'lr': expected KEY=V1,V2"),
        (["--sweep", "seed=1", "--array", "0-3"], "give one of them"),
        (["--train-args=--model 'gru"], "--train-args"),
    ],
)
def test_bad_command_line_values_never_reach_a_script(capsys, arguments, message):
    assert main(["slurm", "submit", "bottleneck", *arguments, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_templates_refuse_unknown_and_unused_placeholders(tmp_path):
    (tmp_path / "job.sbatch").write_text("#!/bin/bash\necho {{greeting}} ${HOME} $USER\n")
    assert (
        slurm.render_template("job", {"greeting": "hi"}, tmp_path) == "#!/bin/bash\necho hi ${HOME} $USER\n"
    )
    with pytest.raises(HpcError, match=r"unknown placeholder\(s\) \['greeting'\]"):
        slurm.render_template("job", {}, tmp_path)
    with pytest.raises(HpcError, match=r"no placeholder for \['farewell'\]"):
        slurm.render_template("job", {"greeting": "hi", "farewell": "bye"}, tmp_path)


@pytest.mark.parametrize("kind", ["train", "sweep", "eval"])
def test_every_shipped_template_renders_to_valid_bash(kind, tmp_path):
    extra = {"array": "0-1", "task_arguments": slurm.sweep_task_arguments([["--seed", "0"], ["--seed", "1"]])}
    script = slurm.render_job(
        kind,
        slurm.SlurmSettings(),
        ["python", "-c", "print('a b')"],
        tmp_path,
        **(extra if kind == "sweep" else {}),
    )
    assert script.startswith("#!/bin/bash\n") and "{{" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_eval_renders_the_eval_command_for_a_run_directory(capsys, tmp_path):
    from marl.run_dir import save_run_checkpoint

    save_run_checkpoint(tmp_path, 1, {"policy": {}}, {}, best=False)
    script = dry_run(capsys, "eval", str(tmp_path), "--eval-args=--episodes 50")
    assert f"-m gridswarm.cli eval {tmp_path} --episodes 50" in script
    assert "--requeue" not in script


def test_status_reports_progress_from_metrics_and_checkpoints(capsys, tmp_path):
    import torch

    import hpc

    (tmp_path / "metrics.jsonl").write_text(
        '{"update": 1}\n{"update": 2, "agent_steps": 4096, "loss": 0.123456}\n'
    )
    hpc.save_checkpoint(tmp_path / "checkpoints", 2, {"w": torch.zeros(1)}, {})
    assert main(["slurm", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no SLURM jobs were submitted" in out
    assert "metrics: 2 records; last: update=2, agent_steps=4096, loss=0.1235" in out
    assert "checkpoints: 1, newest step 2" in out


def test_eval_refuses_a_target_without_a_checkpoint_before_any_job_exists(capsys, tmp_path):
    assert main(["slurm", "eval", str(tmp_path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "a directory without checkpoints" in captured.err and captured.out == ""


def test_submit_without_slurm_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(tmp_path) / "empty"))
    assert main(["slurm", "submit", "bottleneck", "--run-dir", str(tmp_path / "run")]) == 2
    assert "sbatch not found" in capsys.readouterr().err


def test_the_example_site_file_documents_every_setting_and_renders(capsys, tmp_path):
    example = Path(__file__).resolve().parents[2] / "slurm" / "site.example.yaml"
    text = example.read_text()
    documented = set(re.findall(r"^(?:# )?(\w+):", text, flags=re.MULTILINE))
    assert set(slurm.SETTING_NAMES) <= documented, set(slurm.SETTING_NAMES) - documented
    site = slurm.load_site_file(example)  # every value it sets is valid
    script = dry_run(capsys, "submit", "random", "--site", str(example), "--run-dir", str(tmp_path))
    lines = script.splitlines()
    assert f"#SBATCH --partition={site['partition']}" in lines and f"#SBATCH --mem={site['mem']}" in lines
    assert [f"module load {name}" for name in site["modules"]] == [
        line for line in lines if line.startswith("module")
    ]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
