"""Optional packages: one error type whose one line names the `pip install` of the extra that brings the
package, and every `require` in the code names an extra that really installs its module."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

import optdeps
from optdeps import MissingPackageError, install_command, require

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gridswarm", "fsio", "coercion", "sim", "scenarios", "memory", "marl", "hpc", "deploy", "optdeps")


def test_from_the_checkout_the_command_is_the_readme_one(monkeypatch):
    monkeypatch.chdir(REPO)
    assert install_command("pogema") == 'pip install -e ".[pogema]"'


def test_from_elsewhere_the_command_names_the_checkout(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert install_command("mpi") == f'pip install -e "{REPO}[mpi]"'


def test_a_checkout_path_the_shell_would_expand_is_single_quoted(monkeypatch, tmp_path):
    checkout = tmp_path / 'it"s $HOME'
    (checkout / "optdeps").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setattr(optdeps, "__file__", str(checkout / "optdeps" / "__init__.py"))
    assert (
        install_command("export")
        == "pip install -e " + "'" + str(checkout).replace("'", "'\"'\"'") + "[export]'"
    )


def test_an_installed_wheel_names_the_distribution(monkeypatch, tmp_path):
    (tmp_path / "optdeps").mkdir()
    monkeypatch.setattr(optdeps, "__file__", str(tmp_path / "optdeps" / "__init__.py"))
    assert install_command("render") == 'pip install "gridswarm[render]"'


def test_an_unknown_extra_is_a_bug():
    with pytest.raises(ValueError, match="unknown extra 'onnx'"):
        install_command("onnx")


def test_a_present_module_is_returned():
    assert require("json", "pogema", "anything") is sys.modules["json"]


def test_a_missing_package_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setitem(sys.modules, "pogema", None)  # `import pogema` now fails as if it were absent
    with pytest.raises(MissingPackageError) as caught:
        require("pogema", "pogema", "--in-pogema")
    assert str(caught.value) == '--in-pogema needs the optional package pogema: pip install -e ".[pogema]"'
    assert isinstance(caught.value, ImportError)  # `except ImportError` callers keep working


def test_a_package_whose_own_dependency_is_missing_says_which(monkeypatch, tmp_path):
    (tmp_path / "halfinstalled").mkdir()
    (tmp_path / "halfinstalled" / "__init__.py").write_text("import absent_dependency_of_halfinstalled\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingPackageError) as caught:
        require("halfinstalled", "render", "an .mp4")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("an .mp4 needs the optional package halfinstalled,")
    assert "absent_dependency_of_halfinstalled" in message and message.endswith('[render]"')


def test_an_error_inside_a_present_package_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("raise ImportError('a real bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="a real bug") as caught:
        require("brokenpkg", "render", "x")
    assert not isinstance(caught.value, MissingPackageError)


def require_calls() -> list[tuple[str, str, str]]:
    """(file, module, extra) of every `require("module", "extra", ...)` call in the product's code."""
    calls = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                    module, extra = (arg.value for arg in node.args[:2])
                    calls.append((str(path.relative_to(REPO)), module, extra))
    return calls


def test_every_required_module_is_installed_by_the_extra_it_names():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(optdeps.EXTRAS) == set(extras) - {"dev"}
    distributions = importlib.metadata.packages_distributions()
    calls = require_calls()
    assert {module for _, module, _ in calls} >= {"pogema", "mpi4py", "imageio_ffmpeg", "onnx", "onnxruntime"}
    for path, module, extra in calls:
        top = module.partition(".")[0]
        if top not in distributions:
            continue  # not installed here (pogema on numpy 2): its distribution name is unknown
        names = {re.split(r"[<>=!~\[ ;]", requirement)[0].lower() for requirement in extras[extra]}
        provided = {name.lower().replace("_", "-") for name in distributions[top]}
        assert provided & {name.replace("_", "-") for name in names}, f"{path}: {module} is not in [{extra}]"
