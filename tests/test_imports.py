"""Structure: the maths modules import no concrete array library (they get ``xp`` from a
backend), the backend imports nothing of the package above it, and the package's imports
(including those inside functions) form no cycle."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "anybackprop"
MATHS = [
    "activations",
    "losses",
    "updates",
    "heads",
    "network",
    "gradcheck",
    "optim",
    "training",
    "trainable",
    "history",
    "callbacks",
    "divergence",
    "validation",
    "layers/__init__",
    "layers/base",
    "layers/dense",
    "layers/activation",
    "layers/dropout",
    "layers/norm",
    "layers/standardize",
    "layers/robust_scale",
    "layers/target_scale",
    "layers/piecewise_linear",
    "layers/scaled_dense",
]
FORBIDDEN = {"numpy", "cupy", "torch", "array_api_strict", "jax", "scipy", "mpi4py"}


def imported_roots(path):
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path, modules):
    """The package modules ``path`` imports anywhere in it (functions included), as dotted names:
    ``from . import fastpaths`` imports the module ``anybackprop.fastpaths``, not the package's
    ``__init__``; ``from .backend import to_numpy`` imports ``anybackprop.backend``."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("anybackprop"))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
                if not base.startswith("anybackprop"):
                    continue
            else:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def import_graph():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in package_imports(path, modules) if target in modules and target != name}
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


@pytest.mark.parametrize("module", MATHS)
def test_maths_module_imports_no_array_library(module):
    roots = imported_roots(PACKAGE / f"{module}.py")
    assert not roots & FORBIDDEN, f"{module}.py imports {sorted(roots & FORBIDDEN)}"


def test_the_checker_sees_an_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\nfrom cupy import fuse\n")
    assert imported_roots(sample) == {"numpy", "cupy"}


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert (
        "anybackprop.backend" in graph
        and "anybackprop.fastpaths.registry" in graph["anybackprop.fastpaths.numpy_paths"]
    )
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_distributed_module_knows_a_communication_library():
    knows = {
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if "mpi4py" in imported_roots(p) or "cupy.cuda.nccl" in p.read_text()
    }
    assert knows == {"anybackprop.distributed"}


def test_the_floor_imports_nothing_above_it():
    graph = import_graph()
    leaves = {"anybackprop._devices", "anybackprop._launch"}  # they import nothing of the package
    adapters = {name for name in graph if name.startswith("anybackprop.backends")}  # one module per library
    assert {"anybackprop.backends.base", "anybackprop.backends.cupy"} <= adapters
    assert graph["anybackprop.backend"] <= leaves | adapters and all(graph[leaf] == set() for leaf in leaves)
    for adapter in adapters:
        assert graph[adapter] <= leaves | adapters, f"{adapter} imports {graph[adapter] - leaves - adapters}"
    for formula in ("anybackprop.activations", "anybackprop.losses", "anybackprop.updates"):
        assert graph[formula] <= {"anybackprop.activations"}, f"{formula} imports {graph[formula]}"
    above = {"anybackprop.network", "anybackprop.training", "anybackprop.optim", "anybackprop.heads"}
    for fast in (
        "anybackprop.fastpaths",
        "anybackprop.fastpaths.registry",
        "anybackprop.fastpaths.numpy_paths",
        "anybackprop.fastpaths.cupy_kernels",
    ):
        assert not graph[fast] & above, f"{fast} imports {graph[fast] & above}"
