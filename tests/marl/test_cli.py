"""`gridswarm train` / `gridswarm eval` on bad input: one line on stderr, exit 2, nothing half-written."""

import pytest
import torch

from gridswarm.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "bottleneck", "--set", "learning_rate=1"], "unknown key 'learning_rate'"),
    (["train", "bottleneck", "--set", "num_envs=lots"], "key 'num_envs': expected int"),
    (["train", "no-such-scenario"], "no-such-scenario"),
])
def test_train_rejects_bad_input_in_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_rejects_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "bottleneck", "--model", "lstm"])
    assert info.value.code == 2 and "invalid choice: 'lstm'" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not a checkpoint at all", None])
def test_eval_rejects_corrupted_or_foreign_checkpoints(content, capsys, tmp_path):
    path = tmp_path / "policy.pt"
    if content is None:
        torch.save({"meta": '{"format": "something-else"}'}, path)
    else:
        path.write_bytes(content)
    assert main(["eval", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and "\n" not in err
