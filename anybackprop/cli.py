"""The ``anybackprop`` command: ``train``, ``info``, ``gradcheck`` and ``selftest``."""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Sequence

import numpy as np

from . import __version__, datasets, distributed, fastpaths
from .backend import BACKEND_NAMES, DTYPE_NAMES, Backend, available_backends, create_backend, get_backend, set_backend, to_numpy, unavailable_reason
from .fastpaths.check import check_fast_paths
from .gradcheck import gradcheck
from .heads import DEFAULT_LOSS, HEADS
from .io import save
from .layers import NORMS
from .network import HIDDEN_ACTIVATIONS, MLP
from .optim import OPTIMIZERS


def _hidden_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints such as 128,64, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints such as 128,64, got {text!r}")
    return sizes


def _positive(kind: type) -> callable:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anybackprop", description="Train and check MLPs with hand-derived backprop.")
    parser.add_argument("--version", action="version", version=f"anybackprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an MLP on a bundled dataset and print its test accuracy")
    train.add_argument("--dataset", choices=datasets.DATASETS, default="digits")
    train.add_argument("--backend", choices=BACKEND_NAMES + ("auto",), default=None, help="default: ANYBACKPROP_BACKEND or numpy")
    train.add_argument("--device", default=None)
    train.add_argument("--dtype", choices=DTYPE_NAMES, default=None)
    train.add_argument("--hidden", type=_hidden_sizes, default=[128, 64], help="hidden layer sizes, e.g. 128,64")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu")
    train.add_argument("--epochs", type=_positive(int), default=30)
    train.add_argument("--batch-size", type=_positive(int), default=64)
    lrs = ", ".join(f"{spec.lr:g} for {name}" for name, spec in OPTIMIZERS.items())
    train.add_argument("--lr", type=_positive(float), default=None, help=f"default: the optimizer's ({lrs})")
    train.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam")
    train.add_argument("--dropout", type=_probability, default=0.0, help="dropout after each hidden layer (default 0: none)")
    train.add_argument("--norm", choices=tuple(NORMS), default=None, help="normalise each hidden layer's pre-activation (default: none)")
    train.add_argument("--weight-decay", type=float, default=1e-3, help="L2 penalty on the weights (default 1e-3)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--test-size", type=float, default=0.2)
    train.add_argument("--save", metavar="MODEL.npz", default=None)
    train.add_argument("--plot", metavar="CURVES.png", default=None)
    train.add_argument("--quiet", action="store_true", help="print only the final result")

    sub.add_parser("info", help="list backends, devices and versions")

    check = sub.add_parser("gradcheck", help="check every activation/output pairing against finite differences")
    check.add_argument("--backend", choices=BACKEND_NAMES + ("auto",), default=None)

    sub.add_parser("selftest", help="check every usable backend against NumPy and its fast paths against their formulas")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    comm: distributed.Communicator = distributed.SingleProcess()
    try:
        comm = distributed.init()  # several processes when started by mpiexec/srun
        if comm.size > 1 and getattr(args, "backend", None) == "cupy" and not args.device:
            args.device = str(comm.local_rank)  # one GPU per process
        if getattr(args, "backend", None) or getattr(args, "device", None) or getattr(args, "dtype", None):
            set_backend(args.backend or get_backend().name, getattr(args, "device", None), dtype=getattr(args, "dtype", None))
        if args.command in ("train", "info"):
            return {"train": _train, "info": _info}[args.command](args, comm)
        return {"gradcheck": _gradcheck, "selftest": _selftest}[args.command](args)
    except (ValueError, ImportError, RuntimeError) as exc:
        _abort_others(comm, exc)
        print(f"anybackprop: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        _abort_others(comm, exc)
        raise


def _abort_others(comm: distributed.Communicator, exc: BaseException) -> None:
    """Several processes: the others would wait for this one forever; print and end them all."""
    if comm.size > 1:
        traceback.print_exception(exc, file=sys.stderr)
        print(f"anybackprop: error on rank {comm.rank} of {comm.size}: {exc}", file=sys.stderr, flush=True)
        comm.abort(1)


def _train(args: argparse.Namespace, comm: distributed.Communicator) -> int:
    X, y = datasets.load(args.dataset, seed=args.seed)
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, args.test_size, seed=args.seed)
    X_train, X_test = datasets.standardize(X_train, X_test)
    n_classes = int(y.max()) + 1
    output = "sigmoid" if n_classes == 2 else "softmax"
    sizes = [X.shape[1], *args.hidden, 1 if output == "sigmoid" else n_classes]
    model = MLP(sizes, activation=args.activation, output=output, seed=args.seed, dropout=args.dropout or None, norm=args.norm)
    lead = comm.rank == 0  # only rank 0 prints, saves and plots
    verbose = not args.quiet and lead
    if verbose:
        where = f" on {comm.size} processes ({comm.library})" if comm.size > 1 else ""
        print(f"{args.dataset}: {len(X_train)} training and {len(X_test)} test rows{where}; {model}")
    start = time.perf_counter()
    history = model.fit(
        X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, validation_data=(X_test, y_test), verbose=verbose,
        comm=comm if comm.size > 1 else None,
    )
    seconds = time.perf_counter() - start
    if lead:
        _report(args, model, history, seconds, (X, X_test, y_test))
    comm.barrier()  # no process ends before rank 0 has saved (or failed to)
    return 0


def _report(args: argparse.Namespace, model: MLP, history, seconds: float, data: tuple) -> None:
    X, X_test, y_test = data
    accuracy = model.score(X_test, y_test)
    print(f"test accuracy: {accuracy:.4f} ({history.epochs} epochs in {seconds:.2f} s on {model.backend.name})")
    if args.save:
        save(model, args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        from .plotting import plot_training

        plot_training(history, args.plot, model=model if X.shape[1] == 2 else None, data=(X_test, y_test))
        print(f"saved the curves to {args.plot}")


def _info(args: argparse.Namespace, comm: distributed.Communicator) -> int:
    import array_api_compat

    if comm.rank != 0:
        return 0

    print(f"anybackprop {__version__} on Python {platform.python_version()} ({platform.machine()})")
    print(f"numpy {np.__version__}, array-api-compat {array_api_compat.__version__}")
    current = get_backend()
    print(f"current backend: {current.name} on {current.device} ({current.dtype})")
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
    print(f"central differences in float64 on {backend.name}: max relative error per pairing")
    print(f"{'hidden':<11} {'output':<9} {'loss':<21} {'error':>10}")
    failures = 0
    for output in HEADS:
        n_out = 3 if output != "sigmoid" else 1
        Y = {"softmax": rng.integers(0, 3, 8), "sigmoid": rng.integers(0, 2, 8), "identity": rng.standard_normal((8, 3))}[output]
        for loss in dict.fromkeys([DEFAULT_LOSS[output], "mse"]):
            for activation in HIDDEN_ACTIVATIONS:
                model = MLP([4, 6, 5, n_out], activation=activation, output=output, loss=loss, seed=1, dtype="float64")
                error = gradcheck(model, X, Y)
                status = "ok" if error < 1e-4 else "FAIL"
                failures += status == "FAIL"
                print(f"{activation:<11} {output:<9} {loss:<21} {error:>10.2e}  {status}")
    print("all pairings agree" if not failures else f"{failures} pairings FAILED")
    return 1 if failures else 0


SELFTEST_TOLERANCE = 1e-9
"""Largest relative error (max |x - x_numpy| / max |x_numpy| per array) a backend may show against
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


def _selftest_backends() -> list[tuple[str, str | None]]:
    """Every usable backend on its default device, and torch on CUDA where it has one."""
    found = [(name, None) for name in available_backends()]
    if "torch" in available_backends() and create_backend("torch").library.cuda.is_available():
        found.append(("torch", "cuda"))
    return found


def _selftest(args: argparse.Namespace) -> int:
    print(f"anybackprop {__version__} selftest: an MLP [8, 16, 16, 3] trained 3 epochs in float64 against NumPy's portable")
    print(f"formulas (loss, gradients, weights: allowed relative error {SELFTEST_TOLERANCE:g}), and each fast path against its formula")
    print(f"{'backend':<17} {'device':<12} {'version':<14} {'max error':>10}  {'fast paths':<11} result")
    reference = _selftest_run(create_backend("numpy"), fastpaths.NONE)
    failures = 0
    for name, device in _selftest_backends():
        backend = create_backend(name, device)
        version = getattr(backend.library, "__version__", "?")
        try:
            got = _selftest_run(backend)
            error = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300)) for a, b in zip(got, reference))
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


if __name__ == "__main__":
    raise SystemExit(main())
