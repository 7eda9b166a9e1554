"""Coverage of the GPU-only code by the CPU test suite, with NumPy and the recording stand-in of
tests/fake_cupy.py in CuPy's and NCCL's place: runs tests/test_gpu_logic.py under coverage.py
and prints, for each GPU-only unit, the statements run and the lines never run. Exits 1 below
``--fail-under`` percent (default 100). Run from the repository root: python .ci/gpu_coverage.py
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
GPU_ONLY = {
    "anybackprop/backends/cupy.py": ("_CuPy", "rank_gpu", "_check_cupy_computes", "_cupy_activated"),
    "anybackprop/distributed.py": ("MPIComm._gpu", "_Nccl"),
    "anybackprop/fastpaths/cupy_kernels.py": None,  # the whole module
}


def _units(path: pathlib.Path, names: tuple[str, ...] | None) -> dict[str, range]:
    """Line ranges of the named top-level classes/functions (``Class.method`` for a method)."""
    tree = ast.parse(path.read_text())
    if names is None:
        return {path.name: range(1, len(path.read_text().splitlines()) + 1)}
    found = {}
    for node in tree.body:
        for child in [node, *getattr(node, "body", [])] if isinstance(node, ast.ClassDef) else [node]:
            name = getattr(child, "name", "") if child is node else f"{node.name}.{getattr(child, 'name', '')}"
            if name in names and hasattr(child, "end_lineno"):
                start = min([child.lineno, *(d.lineno for d in getattr(child, "decorator_list", []))])
                found[name] = range(start, child.end_lineno + 1)
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"{path}: no unit named {sorted(missing)}; update GPU_ONLY in {__file__}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-under", type=float, default=100.0)
    args = parser.parse_args()
    import coverage
    import pytest

    cov = coverage.Coverage(data_file=None, source=[str(ROOT / "anybackprop")])
    cov.start()
    status = pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_gpu_logic.py")])
    cov.stop()
    if status != 0:
        return int(status)
    run = statements = 0
    for relative, names in GPU_ONLY.items():
        path = ROOT / relative
        _, lines, _, missing, _ = cov.analysis2(str(path))
        for name, span in _units(path, names).items():
            mine = [n for n in lines if n in span]
            never = [n for n in missing if n in span]
            run, statements = run + len(mine) - len(never), statements + len(mine)
            print(f"{relative}:{name:<24} {len(mine) - len(never):>4}/{len(mine):<4} never run: {never or '-'}")
    percent = 100.0 * run / max(statements, 1)
    print(f"GPU-only statements run on the CPU: {run}/{statements} ({percent:.1f}%)")
    return 0 if percent >= args.fail_under else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
