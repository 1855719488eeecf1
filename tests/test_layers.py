"""Imports go one way (docs/design.md, "Layers and imports"): every import of one of our packages in the
product's code is one its layer may make."""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOTTOM = {"fsio", "coercion", "optdeps"}
MAY_IMPORT = {
    "fsio": set(),
    "coercion": set(),
    "optdeps": set(),
    "scenarios": BOTTOM,
    "memory": BOTTOM,
    "hpc": BOTTOM,
    "sim": BOTTOM | {"scenarios"},
    "marl": BOTTOM | {"scenarios", "sim", "memory", "hpc"},
    "deploy": BOTTOM | {"scenarios", "sim", "memory"},
    "gridswarm": BOTTOM | {"scenarios", "sim", "memory", "hpc", "marl", "deploy"},
}


def imports_of_ours(package: str) -> list[tuple[str, str]]:
    """(file, imported module) of every absolute import of one of our packages other than `package`."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            found += [
                (str(path.relative_to(REPO)), module)
                for module in modules
                if module.split(".")[0] in MAY_IMPORT and module.split(".")[0] != package
            ]
    return found


def test_every_package_imports_only_the_layers_below_it():
    wrong = [
        f"{path} imports {module}"
        for package, allowed in MAY_IMPORT.items()
        for path, module in imports_of_ours(package)
        if module.split(".")[0] not in allowed
    ]
    assert wrong == []


# What sim may import of scenarios: the schema, the variants and what they use, never the loader; the one
# exception is the episode store, which writes and reads back an episode's scenario as YAML text.
SIM_SCENARIOS = {"scenarios.schema", "scenarios.variants", "scenarios.errors", "scenarios.limits"}
SIM_SCENARIOS |= {"scenarios.asciimap"}
EPISODE_STORE = {"sim/episodes.py", "sim/episode_writer.py"}


def test_sim_imports_no_scenario_loader_outside_the_episode_store():
    wrong = [
        f"{path} imports {module}"
        for path, module in imports_of_ours("sim")
        if module.startswith("scenarios")
        and module not in SIM_SCENARIOS
        and not (module == "scenarios" and path in EPISODE_STORE)
    ]
    assert wrong == []


def test_the_check_sees_an_import_against_the_direction(tmp_path, monkeypatch):
    (tmp_path / "hpc").mkdir()
    (tmp_path / "hpc" / "bad.py").write_text("def f():\n    from marl.train import train\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imports_of_ours("hpc") == [("hpc/bad.py", "marl.train")]
