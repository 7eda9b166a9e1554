"""The installed CuPy against what anybackprop asks of it, without a GPU: every fused kernel
compiles with NVRTC for the architectures users have, and every CuPy/NCCL name the code uses
exists. Runs where cupy imports (``.ci/cupy-check`` installs it: ``cupy-cuda12x``, the NVRTC and
NCCL wheels); skipped elsewhere."""

import pathlib
import re

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

from anybackprop.fastpaths.cupy_kernels import KERNELS  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARCHITECTURES = ("80", "90")  # A100, H100/H200
PROBE = ("T x", "T y", "y = x * x")  # backends.cupy._check_cupy_computes's kernel


def _source(name, params, dtype, layout):
    """The CUDA source CuPy generates for kernel ``name`` on arrays of ``dtype``: ``layout`` 1 is
    the contiguous case (CuPy folds it to 1-D), 2 a broadcast bias (2-D, strided)."""
    from cupy._core import _carray, _kernel, core

    kernel = cupy.ElementwiseKernel(*params, name)
    n_in, n_out = len(params[0].split(",")), len(params[1].split(","))
    _, _, type_map = kernel._decide_params_type((dtype,) * n_in, (dtype,) * n_out)
    array = _kernel._ArgInfo(1, cupy.ndarray, dtype.type, layout, layout == 1, True)  # 1: ARG_KIND_NDARRAY
    indexer = _kernel._ArgInfo(2, _carray.Indexer, None, layout, True, True)  # 2: ARG_KIND_INDEXER
    code = _kernel._get_elementwise_kernel_code(
        (array,) * (n_in + n_out) + (indexer,), type_map, kernel.params, kernel.operation, name, kernel.preamble
    )
    return "".join(f"#include <{header}>\n" for header in core._cupy_header_list) + code


def _compile(source, arch):
    """NVRTC's cubin for ``arch``, with the options CuPy compiles its kernels with."""
    from cupy._core import core
    from cupy.cuda import compiler

    options = (*core.assemble_cupy_compiler_options(()), f"-arch=sm_{arch}", "--device-as-default-execution-space")
    program = compiler._NVRTCProgram(source, "kern.cu", (), (), name_expressions=None, method="cubin")
    return program.compile(options)[0]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dtype", [np.dtype("float32"), np.dtype("float64")], ids=["float32", "float64"])
@pytest.mark.parametrize("name", [*KERNELS, "anybackprop_probe"])
def test_every_fused_kernel_compiles_with_nvrtc(name, dtype, arch):
    params = PROBE if name == "anybackprop_probe" else KERNELS[name]
    for layout in (1, 2):
        assert len(_compile(_source(name, params, dtype, layout), arch)) > 0


def test_a_kernel_with_an_error_does_not_compile():
    """The check above can fail: NVRTC reports an unknown name."""
    from cupy.cuda.compiler import CompileException

    params = ("T x", "T y", "y = x * undefined_name")
    with pytest.raises(CompileException, match="undefined_name"):
        _compile(_source("anybackprop_broken", params, np.dtype("float32"), 1), "90")


def _used_names():
    """``(root, dotted name, file)`` for every chain of attributes the code takes from CuPy
    (``cupy.x.y``), its NCCL module (``nccl.x``) and its compute-type switch (``linalg.x`` in
    backends/cupy.py), plus the methods it calls on CuPy's objects."""
    found = set()
    for path in [*(ROOT / "anybackprop").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        text = path.read_text()
        if "cupy" not in text:
            continue
        for root in ("cupy", "nccl", "linalg"):
            for chain in re.findall(rf"\b{root}\.([A-Za-z_][\w.]*)", text):
                if root != "linalg" or path.name == "cupy.py":
                    found.add((root, chain.rstrip("."), path.name))
    methods = {
        ("cupy", "ndarray.get", "cupy.py"),  # to_numpy
        ("cupy", "ndarray.data", "distributed.py"),  # x.data.ptr for NCCL
        ("nccl", "NcclCommunicator.allReduce", "distributed.py"),
        ("nccl", "NcclCommunicator.bcast", "distributed.py"),
        ("cupy", "cuda.Device.compute_capability", "test_gpu.py"),
    }
    return sorted(found | methods)


def test_the_scan_finds_the_names_it_must():
    names = {(root, name) for root, name, _ in _used_names()}
    assert {("cupy", "ElementwiseKernel"), ("nccl", "NcclCommunicator"), ("linalg", "set_compute_type")} <= names


def test_every_cupy_and_nccl_name_the_code_uses_exists():
    import importlib

    from cupy.cuda import nccl

    roots = {"cupy": cupy, "nccl": nccl, "linalg": importlib.import_module("cupy._core._routines_linalg")}
    missing = []
    for root, name, where in _used_names():
        obj = roots[root]
        for part in name.split("."):
            if not hasattr(obj, part):
                try:
                    obj = importlib.import_module(f"{obj.__name__}.{part}")  # a submodule not imported yet
                except (ImportError, AttributeError, TypeError):
                    missing.append(f"{root}.{name} ({where})")
                    break
            else:
                obj = getattr(obj, part)
    assert missing == []
    assert nccl.available, "the NCCL library is missing: pip install nvidia-nccl-cu12"
