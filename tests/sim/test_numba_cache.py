"""numba caches a caller with its callees inlined but checks only the caller's file: these tests show the
stale result that gives, and that `clear_stale_caches` (run at `import sim`) removes it."""

import subprocess
import sys
import textwrap
from pathlib import Path

from sim.numba_cache import STAMP_NAME, clear_stale_caches

CALLEE = "from numba import njit\n\n@njit(cache=True)\ndef value():\n    return {}\n"
CALLER = textwrap.dedent("""
    from numba import njit
    from kernels.callee import value

    @njit(cache=True)
    def doubled():
        return 2 * value()
""")
RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "clear":
        from sim.numba_cache import clear_stale_caches
        clear_stale_caches(Path(sys.argv[1]) / "kernels")
    from kernels.caller import doubled
    print(doubled())
""")


def make_tree(root: Path, callee_value: int) -> None:
    (root / "kernels").mkdir(exist_ok=True)
    (root / "kernels" / "__init__.py").write_text("")
    (root / "kernels" / "callee.py").write_text(CALLEE.format(callee_value))
    (root / "kernels" / "caller.py").write_text(CALLER)


def doubled_in_fresh_process(root: Path, mode: str) -> int:
    repo = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(root), mode], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    return int(result.stdout.strip())


def test_an_edited_callee_runs_stale_from_numbas_cache_unless_cleared(tmp_path):
    make_tree(tmp_path, 1)
    assert doubled_in_fresh_process(tmp_path, "keep") == 2
    make_tree(tmp_path, 50)  # the callee changes (in size too: same-second edits), the caller's file does not
    assert doubled_in_fresh_process(tmp_path, "keep") == 2  # numba's stale inlined callee
    assert doubled_in_fresh_process(tmp_path, "clear") == 100


def test_caches_are_kept_while_the_sources_stay_the_same(tmp_path):
    (tmp_path / "kernel.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / "kernel.f-1.py311.nbi").write_bytes(b"index")
    assert clear_stale_caches(tmp_path)  # no stamp yet: cleared
    assert not (cache / "kernel.f-1.py311.nbi").exists()
    assert (cache / STAMP_NAME).exists()
    (cache / "kernel.f-1.py311.nbi").write_bytes(b"index")
    assert not clear_stale_caches(tmp_path)
    assert (cache / "kernel.f-1.py311.nbi").exists()
    (tmp_path / "kernel.py").write_text("x = 2\n")
    assert clear_stale_caches(tmp_path)
    assert not (cache / "kernel.f-1.py311.nbi").exists()
