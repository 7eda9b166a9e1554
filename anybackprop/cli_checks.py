"""The ``anybackprop`` commands that check an installation: ``info`` (versions, backends, devices,
threads, processes), ``gradcheck`` (every hidden activation, head and loss against central
differences) and ``selftest`` (every usable backend's training and fast paths against NumPy's)."""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from . import __version__, distributed, fastpaths, threads
from .backend import (
    BACKEND_NAMES,
    DTYPE_NAMES,
    Backend,
    available_backends,
    broken_reason,
    create_backend,
    get_backend,
    to_numpy,
    unavailable_reason,
)
from .fastpaths.check import check_fast_paths
from .gradcheck import gradcheck
from .heads import DEFAULT_LOSS, OUTPUTS
from .network import HIDDEN_ACTIVATIONS, MLP


def _info(args: argparse.Namespace, comm: distributed.Communicator) -> int:
    import array_api_compat

    if comm.rank != 0:
        return 0

    print(f"anybackprop {__version__} on Python {platform.python_version()} ({platform.machine()})")
    print(f"numpy {np.__version__}, array-api-compat {array_api_compat.__version__}")
    try:
        current = get_backend()
        print(f"current backend: {current.name} on {current.device} ({current.dtype})")
    except ValueError as exc:  # info is what a user runs when the environment names a bad backend
        print(f"current backend: none usable: {exc}")
    print(threads.describe())
    print(f"processes: {distributed.describe(comm)}")
    usable = available_backends()
    for name in BACKEND_NAMES:
        if name in usable:
            backend = create_backend(name)
            version = getattr(backend.library, "__version__", "?")
            print(f"  {name:<17} usable     version {version}, device {backend.device}")
        else:
            print(f"  {name:<17} not usable: {unavailable_reason(name)}")
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    backend = get_backend()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4))
    print(f"central differences in float64 on {backend.name}: worst relative error per pairing; an entry passes")
    print("when |analytic - numeric| <= 1e-07 + 1e-05 |numeric| (see help(anybackprop.gradcheck))")
    print(f"{'hidden':<11} {'output':<9} {'loss':<21} {'error':>10}  {'kinks':>5}")
    failures = 0
    for output in OUTPUTS:  # the command line's outputs and the exp output of Poisson regression
        n_out = 3 if output != "sigmoid" else 1
        Y = {
            "softmax": rng.integers(0, 3, 8),
            "sigmoid": rng.integers(0, 2, 8),
            "identity": rng.standard_normal((8, 3)),
            "exp": rng.poisson(2.0, (8, 3)),
        }[output]
        for loss in dict.fromkeys([DEFAULT_LOSS[output], "mse"]):
            for activation in HIDDEN_ACTIVATIONS:
                model = MLP([4, 6, 5, n_out], activation=activation, output=output, loss=loss, seed=1, dtype="float64")
                result = gradcheck(model, X, Y)
                status = "ok" if result.passed else "FAIL"
                failures += status == "FAIL"
                kinks = len(result.rechecked)
                print(f"{activation:<11} {output:<9} {loss:<21} {result:>10.2e}  {kinks:>5}  {status}")
    print("all pairings agree" if not failures else f"{failures} pairings FAILED")
    return 1 if failures else 0


SELFTEST_TOLERANCE = 1e-9
"""Largest relative error (``max |x - x_numpy| / max |x_numpy|`` per array) a backend may show against
NumPy in the float64 self-test: the libraries differ only in the order of floating-point sums."""


def _selftest_run(backend: Backend, fast: fastpaths.FastPaths | None = None) -> list[np.ndarray]:
    """Loss and gradients of an MLP [8, 16, 16, 3] (relu, softmax) in float64 from seed 0's
    weights, then again after 3 epochs of SGD, and the trained weights, as NumPy arrays."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 8)), rng.integers(0, 3, 32)
    model = MLP([8, 16, 16, 3], activation="relu", seed=0, dtype="float64", backend=backend)
    if fast is not None:
        model.fast = fast
    found = []
    for step in range(2):
        loss, grads = model.loss_and_grads(X, y)
        found += [np.asarray(loss), *(to_numpy(g) for g in grads.values())]
        if not step:
            model.fit(X, y, epochs=3, batch_size=8, optimizer="sgd", lr=0.1, seed=0, verbose=False)
    return found + [to_numpy(p) for p in model.params.values()]


def _selftest_backends(args: argparse.Namespace) -> list[tuple[str, str | None, str | None]]:
    """``(name, device, why it cannot run or None)`` for every usable backend (on its default
    device, or on the one asked for), torch on CUDA where it has one, a backend that imports but
    cannot compute, and the backend asked for (``--backend``, else ``ANYBACKPROP_BACKEND``) even
    when it is not usable: the last two fail the test."""
    asked = args.check_backend or os.environ.get("ANYBACKPROP_BACKEND", "").strip().lower() or None
    device = args.check_device
    if device is None and (args.check_backend is None or asked == os.environ.get("ANYBACKPROP_BACKEND", "").lower()):
        device = os.environ.get("ANYBACKPROP_DEVICE") or None
    if asked == "auto":
        asked = "numpy" if unavailable_reason("cupy") else "cupy"
    found: list[tuple[str, str | None, str | None]] = []
    for name in (*BACKEND_NAMES, *([asked] if asked and asked not in BACKEND_NAMES else [])):
        reason = unavailable_reason(name) if name != asked else _unusable(name, device)
        if reason is None or name == asked or broken_reason(name):
            found.append((name, device if name == asked else None, reason))
    if "torch" in available_backends() and create_backend("torch").library.cuda.is_available():
        found.append(("torch", "cuda", None))
    return found


def _unusable(name: str, device: str | None) -> str | None:
    """Why backend ``name`` cannot run on ``device`` here, or None."""
    try:
        create_backend(name, device)
    except ValueError as exc:
        return str(exc)
    return None


def _selftest(args: argparse.Namespace) -> int:
    print(
        f"anybackprop {__version__} selftest: an MLP [8, 16, 16, 3] trained 3 epochs in float64 against NumPy's "
        "portable"
    )
    print(
        f"formulas (loss, gradients, weights: allowed relative error {SELFTEST_TOLERANCE:g}), and each fast "
        "path against its formula"
    )
    print(f"{'backend':<17} {'device':<12} {'version':<14} {'max error':>10}  {'fast paths':<11} result")
    reference = _selftest_run(create_backend("numpy"), fastpaths.NONE)
    failures = 0
    for name, device, reason in _selftest_backends(args):
        if reason is not None:
            print(f"{name:<17} {device or 'default':<12} {'-':<14} {'-':>10}  {'-':<11} FAIL")
            print(f"    not usable: {reason}")
            failures += 1
            continue
        backend = create_backend(name, device)
        version = getattr(backend.library, "__version__", "?")
        try:
            got = _selftest_run(backend)
            error = max(
                float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))
                for a, b in zip(got, reference, strict=True)
            )
            checks = [c for dtype in DTYPE_NAMES for c in check_fast_paths(create_backend(name, device, dtype=dtype))]
            problems = [f"{c.path.formula}: {c.problem}" for c in checks if not c.ok]
            if error > SELFTEST_TOLERANCE:
                problems.insert(0, f"training differs from NumPy by {error:.2e}")
        except Exception as exc:  # a backend that cannot run the test fails it, with the reason
            error, checks, problems = float("nan"), [], [f"{type(exc).__name__}: {exc}"]
        paths = f"{sum(c.ok for c in checks)}/{len(checks)} ok" if checks else "none"
        shown = str(backend.device).split("'")[1] if "'" in str(backend.device) else str(backend.device)
        print(f"{name:<17} {shown:<12} {version:<14} {error:>10.2e}  {paths:<11} {'FAIL' if problems else 'pass'}")
        for problem in problems:
            print(f"    {problem}")
        failures += bool(problems)
    print("every backend agrees with NumPy" if not failures else f"{failures} backends FAILED")
    return 1 if failures else 0
