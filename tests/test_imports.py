"""The maths modules import no concrete array library: they get ``xp`` from a backend."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "anybackprop"
MATHS = ["activations", "losses", "layers", "network", "gradcheck", "optim", "training", "validation"]
FORBIDDEN = {"numpy", "cupy", "torch", "array_api_strict", "jax", "scipy"}


def imported_roots(path):
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", MATHS)
def test_maths_module_imports_no_array_library(module):
    roots = imported_roots(PACKAGE / f"{module}.py")
    assert not roots & FORBIDDEN, f"{module}.py imports {sorted(roots & FORBIDDEN)}"


def test_the_checker_sees_an_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\nfrom cupy import fuse\n")
    assert imported_roots(sample) == {"numpy", "cupy"}
