"""The ``anybackprop`` command: ``train``, ``predict``, ``evaluate``, ``export``, ``info``, ``gradcheck``
and ``selftest``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import __version__, datasets, distributed, fastpaths, threads
from .backend import (
    BACKEND_NAMES,
    DTYPE_NAMES,
    Backend,
    available_backends,
    broken_reason,
    create_backend,
    environment_backend,
    get_backend,
    to_numpy,
    unavailable_reason,
    use_backend,
)
from .fastpaths.check import check_fast_paths
from .files import csv_text, write_text
from .gradcheck import gradcheck
from .heads import DEFAULT_LOSS, HEADS
from .io import load, save
from .layers import NORMS, SCALERS
from .losses import LOSSES
from .network import HIDDEN_ACTIVATIONS, MLP, Sequential
from .optim import OPTIMIZERS, SCHEDULES
from .tables import IMPUTE, MAX_CATEGORIES, TASKS, TabularModel, check_complete, infer_task

DEFAULT_PATIENCE = 20
"""Epochs without a better validation loss after which ``train`` stops (with a validation split)."""


def _hidden_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]  # an empty entry (",,,") is not a layer
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive ints such as 128,64, got {text!r}"
        ) from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints such as 128,64, got {text!r}")
    return sizes


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative int, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share of the rows in (0, 1), got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="anybackprop", description="Train and check MLPs with hand-derived backprop.", formatter_class=fmt
    )
    parser.add_argument("--version", action="version", version=f"anybackprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def backend_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--backend",
            choices=(*BACKEND_NAMES, "auto"),
            default=None,
            help="array backend (None: ANYBACKPROP_BACKEND or numpy)",
        )
        p.add_argument("--device", default=None, help="device of the backend (None: its default)")
        p.add_argument(
            "--dtype", choices=DTYPE_NAMES, default=None, help="float dtype (None: ANYBACKPROP_DTYPE or float32)"
        )

    def file_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--encoding", default=None, help="text encoding of a CSV file (None: UTF-8)")
        p.add_argument(
            "--delimiter",
            default=None,
            help="field delimiter of a CSV file, e.g. ';' or '\\t' (None: the most frequent of , ; tab | on line 1)",
        )

    train = sub.add_parser(
        "train",
        help="train an MLP on a bundled dataset or your own table and print its test metric",
        formatter_class=fmt,
    )
    train.add_argument(
        "--data", metavar="PATH", default=None, help="a .csv, .parquet or .npz table to train on (None: --dataset)"
    )
    train.add_argument(
        "--target", metavar="COLUMN", default=None, help="the column of --data to predict (None: y for .npz)"
    )
    train.add_argument("--task", choices=TASKS, default=None, help="None: inferred from the target and printed")
    file_flags(train)
    train.add_argument(
        "--impute",
        choices=IMPUTE,
        default=None,
        help="fill missing feature values (text columns: their most frequent value; None: a missing value is an error)",
    )
    train.add_argument(
        "--max-categories",
        type=_positive(int),
        default=MAX_CATEGORIES,
        help="one-hot features per text column at most; rarer categories are grouped as <other>",
    )
    train.add_argument(
        "--min-frequency",
        type=_positive(int),
        default=None,
        metavar="N",
        help="categories of fewer than N training rows are grouped as <other> (None: no minimum)",
    )
    train.add_argument(
        "--dataset", choices=datasets.DATASETS, default="digits", help="bundled dataset, used without --data"
    )
    backend_flags(train)
    train.add_argument("--hidden", type=_hidden_sizes, default=[128, 64], help="hidden layer sizes, e.g. 128,64")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="hidden activation")
    train.add_argument(
        "--output",
        choices=tuple(HEADS),
        default=None,
        help="output activation (None: sigmoid for 2 classes, softmax for more, identity for regression)",
    )
    train.add_argument("--loss", choices=tuple(LOSSES), default=None, help="loss (None: the output's pair)")
    train.add_argument(
        "--epochs", type=_positive(int), default=100, help="most epochs (early stopping usually ends sooner)"
    )
    train.add_argument("--batch-size", type=_positive(int), default=128, help="rows per step")
    lrs = ", ".join(f"{spec.lr:g} for {name}" for name, spec in OPTIMIZERS.items())
    train.add_argument(
        "--lr", type=_positive(float), default=None, help=f"learning rate (None: the optimizer's: {lrs})"
    )
    train.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam", help="optimizer")
    train.add_argument(
        "--momentum",
        type=_probability,
        default=None,
        help="momentum of sgd/momentum/nesterov (None: 0 for sgd, 0.9 for the others)",
    )
    train.add_argument("--weight-decay", type=_non_negative, default=1e-3, help="L2 penalty on the weights")
    train.add_argument(
        "--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule over the epochs"
    )
    train.add_argument(
        "--early-stopping",
        type=_positive(int),
        default=None,
        metavar="N",
        help=f"stop after N epochs without a better validation loss and keep the best weights (None: "
        f"{DEFAULT_PATIENCE} with a --validation-size, else off)",
    )
    train.add_argument(
        "--scaling",
        choices=(*SCALERS, "none"),
        default="robust",
        help="input scaling learned from the training rows (robust: median, quartiles, smooth clipping; "
        "standard: mean and standard deviation)",
    )
    train.add_argument(
        "--bins",
        type=int,
        default=0,
        help="piecewise-linear encoding of each input in this many quantile bins (0: none)",
    )
    train.add_argument(
        "--no-target-scaling",
        dest="scale_target",
        action="store_false",
        help="regression: train on the raw target instead of the standardised one",
    )
    train.add_argument("--dropout", type=_probability, default=0.0, help="dropout after each hidden layer (0: none)")
    train.add_argument(
        "--norm", choices=tuple(NORMS), default=None, help="normalise each hidden layer's pre-activation (None: none)"
    )
    train.add_argument(
        "--class-weight",
        choices=("balanced",),
        default=None,
        help="weigh classes inversely to their frequency (None: equal)",
    )
    train.add_argument(
        "--seed", type=_seed, default=0, help="seed of the split, the initial weights, the shuffles and dropout"
    )
    train.add_argument(
        "--test-size", type=_share, default=0.2, help="share of the rows held out for the test (stratified for classes)"
    )
    train.add_argument(
        "--validation-size",
        type=_probability,
        default=0.1,
        help="share of the training rows held out for validation (early stopping, curves); 0: none",
    )
    train.add_argument(
        "--save",
        metavar="MODEL.npz",
        default=None,
        help="write the model, with its preprocessing and labels (None: not saved)",
    )
    train.add_argument(
        "--checkpoint", metavar="PATH", default=None, help="write a checkpoint at each epoch's end (None: none)"
    )
    train.add_argument(
        "--resume",
        metavar="PATH",
        default=None,
        help="continue from a checkpoint of the same command (None: start afresh)",
    )
    train.add_argument("--plot", metavar="CURVES.png", default=None, help="draw the training curves (None: no plot)")
    train.add_argument("--json", action="store_true", help="print only a JSON result")
    train.add_argument("--quiet", action="store_true", help="print only the final result")

    predict = sub.add_parser(
        "predict", help="predict the rows of a table with a saved model; CSV out", formatter_class=fmt
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by anybackprop train --save")
    predict.add_argument("data", metavar="DATA", help="a .csv, .parquet or .npz table with the model's feature columns")
    predict.add_argument("--output", metavar="PATH", default=None, help="CSV file to write (None: standard output)")
    predict.add_argument("--proba", action="store_true", help="one probability column per class instead of the label")
    file_flags(predict)
    backend_flags(predict)

    evaluate = sub.add_parser(
        "evaluate", help="metric, loss and confusion matrix of a saved model on a table", formatter_class=fmt
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by anybackprop train --save")
    evaluate.add_argument(
        "data", metavar="DATA", help="a .csv, .parquet or .npz table with the features and the target"
    )
    evaluate.add_argument(
        "--target", metavar="COLUMN", default=None, help="the target column (None: the one the model was trained on)"
    )
    evaluate.add_argument("--json", action="store_true", help="print a JSON result")
    file_flags(evaluate)
    backend_flags(evaluate)

    export = sub.add_parser(
        "export", help="write a saved model as an ONNX inference graph (needs the onnx extra)", formatter_class=fmt
    )
    export.add_argument("model", metavar="MODEL", help="a model saved by anybackprop train --save")
    export.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")

    sub.add_parser("info", help="list backends, devices and versions", formatter_class=fmt)

    check = sub.add_parser(
        "gradcheck", help="check every activation/output pairing against finite differences", formatter_class=fmt
    )
    check.add_argument(
        "--backend",
        choices=(*BACKEND_NAMES, "auto"),
        default=None,
        help="array backend (None: ANYBACKPROP_BACKEND or numpy)",
    )

    selftest = sub.add_parser(
        "selftest",
        help="check every usable backend against NumPy and its fast paths against their formulas",
        formatter_class=fmt,
    )
    selftest.add_argument(
        "--backend",
        dest="check_backend",
        choices=(*BACKEND_NAMES, "auto"),
        default=None,
        help="a backend that must be usable and pass (None: ANYBACKPROP_BACKEND where set)",
    )
    selftest.add_argument(
        "--device", dest="check_device", default=None, help="its device (None: ANYBACKPROP_DEVICE or the default)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status: 0 done, 1 a check failed, 2 bad input, 130 interrupted
    (Ctrl-C: one line, no traceback, no half-written file), 141 the reader closed the pipe."""
    args = _parser().parse_args(argv)
    commands: dict[str, Callable[..., int]] = {
        "train": _train,
        "predict": _predict,
        "evaluate": _evaluate,
        "export": _export,
        "info": _info,
        "gradcheck": _gradcheck,
        "selftest": _selftest,
    }
    comm: distributed.Communicator = distributed.SingleProcess()
    try:
        comm = distributed.init()  # several processes when started by mpiexec/srun (a GPU each: backend.rank_gpu)
        with _backend_of(args), warnings.catch_warnings():  # the caller's backend and warning display are left alone
            warnings.showwarning = _show_warning
            if args.command in ("train", "info"):
                return commands[args.command](args, comm)
            return commands[args.command](args)
    except _FailedOnRankZero:
        return 2
    except USER_ERRORS as exc:
        if isinstance(exc, RuntimeError):  # a device or library failure may strike one process alone
            _abort_others(comm, exc)
        if comm.rank == 0:  # every process meets an input error alike (they read the same files): rank 0 says it
            print(f"anybackprop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anybackprop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. anybackprop train | head -1: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        _abort_others(comm, exc)
        raise


USER_ERRORS = (ValueError, TypeError, ImportError, FileNotFoundError, RuntimeError)
"""What a user's input or environment causes: one line on standard error and exit status 2."""


class _FailedOnRankZero(Exception):
    """Rank 0 met a user error (and said so) after the collective part of a command."""


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """A warning as one line for the command's user (no source path or code line)."""
    print(f"anybackprop: warning: {message}", file=sys.stderr if file is None else file)


def _abort_others(comm: distributed.Communicator, exc: BaseException) -> None:
    """Several processes: the others would wait for this one forever; print and end them all."""
    if comm.size > 1:
        traceback.print_exception(exc, file=sys.stderr)
        print(f"anybackprop: error on rank {comm.rank} of {comm.size}: {exc}", file=sys.stderr, flush=True)
        comm.abort(1)


def _backend_of(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The backend the command asks for, for its duration: each of ``--backend``/``--device``/
    ``--dtype`` given replaces its own environment variable, the others still apply."""
    name, device, dtype = (getattr(args, key, None) for key in ("backend", "device", "dtype"))
    if not (name or device or dtype):
        return contextlib.nullcontext()
    return use_backend(environment_backend(name, device, dtype))


def _where(network: Sequential, batch_size: int, processes: int) -> dict:
    """Where a training ran, for ``train --json``: backend, device, dtype, processes, and the BLAS
    threads of each process (None where the arrays are not on the host)."""
    backend = network.backend
    blas = threads.choose(threads.largest_product(network.layers, batch_size))[0] if backend.adapter.host else None
    return {
        "backend": backend.name,
        "device": str(backend.device),
        "dtype": network.dtype_name,
        "processes": processes,
        "threads": blas,
    }


def _training_data(args: argparse.Namespace) -> tuple[str, dict, np.ndarray, str | None]:
    """``(name, feature columns, target values, target name)`` of ``--data`` or ``--dataset``."""
    if args.data is None:
        if args.target is not None:
            raise ValueError("--target needs --data (the bundled datasets know their target)")
        X, y = datasets.load(args.dataset, seed=args.seed)
        return args.dataset, {f"x{j}": X[:, j] for j in range(X.shape[1])}, y, "y"
    columns, y = datasets.load_table(args.data, target=args.target, **_file_options(args))
    return args.data, columns, y, args.target or "y"


def _file_options(args: argparse.Namespace) -> dict:
    """``--encoding`` and ``--delimiter`` as :func:`~anybackprop.tables.read_table` takes them
    (``\\t`` written out in a shell means a tab)."""
    delimiter = args.delimiter
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    return {"encoding": args.encoding, "delimiter": delimiter}


def _check_destination(path: str | None, flag: str) -> None:
    """Refuse, before any work, a file ``path`` (given as ``flag``) that could not be written:
    its directory missing or not writable, or a directory in its place."""
    if path is None:
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not path:
        raise ValueError(f"{flag} needs a file name, got an empty one")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a directory; give a file name")
    if not os.path.isdir(directory):
        raise ValueError(f"{flag} {path!r}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path!r}: the directory {directory} is not writable")


def _check_plot(path: str | None) -> None:
    """Refuse, before training, a ``--plot`` that could not be drawn: matplotlib missing or a
    picture format it does not write (the extension names it; none means png)."""
    if path is None:
        return
    _check_destination(path, "--plot")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--plot needs matplotlib, an optional extra: pip install 'anybackprop[plot]'") from None
    extension = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    supported = Figure().canvas.get_supported_filetypes()
    if extension not in supported:
        raise ValueError(
            f"--plot {path!r}: matplotlib cannot write .{extension} pictures; use one of {', '.join(sorted(supported))}"
        )


def _train(args: argparse.Namespace, comm: distributed.Communicator) -> int:
    # every process checks what rank 0 will write, so that a user error stops them all alike
    _check_destination(args.save, "--save")
    _check_destination(args.checkpoint, "--checkpoint")
    _check_plot(args.plot)
    if args.early_stopping is not None and not args.validation_size:
        raise ValueError(
            "--early-stopping needs a validation split carved from the training rows: --validation-size > 0"
        )
    name, columns, y, target = _training_data(args)
    if args.impute is None:
        check_complete(columns)
    task = args.task or infer_task(y)
    stratify = task == "classification"
    train_cols, test_cols, y_train, y_test = datasets.split_table(
        columns, y, args.test_size, seed=args.seed, stratify=stratify
    )
    validation = None  # carved from the training rows: the test rows are used once, at the end
    if args.validation_size:
        try:
            train_cols, val_cols, y_train, y_val = datasets.split_table(
                train_cols, y_train, args.validation_size, seed=args.seed, stratify=stratify
            )
        except ValueError as exc:
            raise ValueError(
                f"the validation split of the {len(y_train)} training rows (--validation-size {args.validation_size}): "
                f"{exc}; --validation-size 0 trains without one"
            ) from None
        validation = (val_cols, y_val)
    mlp = {"activation": args.activation, "seed": args.seed, "dropout": args.dropout or None, "norm": args.norm}
    if args.loss is not None:
        mlp["loss"] = args.loss
    scaling = {"standardize": args.scaling != "none" and args.scaling, "scale_target": args.scale_target}
    if args.bins:
        scaling["bins"] = args.bins
    model = TabularModel(
        args.hidden,
        task=task,
        impute=args.impute,
        output=args.output,
        max_categories=args.max_categories,
        min_frequency=args.min_frequency,
        **scaling,
        **mlp,
    )
    model.prepare(train_cols, y_train, target)
    lead = comm.rank == 0  # only rank 0 prints, saves and plots
    chatty = not (args.quiet or args.json) and lead
    if chatty:
        if comm.size > 1:
            print(f"training on {comm.size} processes ({comm.library})")
        if args.data is not None:
            how = "given" if args.task else "inferred from the target"
            labels = ""
            if model.classes is not None:
                more = " ..." if len(model.classes) > 10 else ""
                labels = f": {len(model.classes)} classes {', '.join(map(str, model.classes[:10]))}{more}"
            print(f"task: {task} ({how} {target!r}{labels})")
        if model.encoder.filled:
            print(model.encoder.describe_filled())
        held = f", {len(validation[1])} validation" if validation else ""
        print(f"{name}: {len(y_train)} training{held} and {len(y_test)} test rows; {model.network}")
    optimizer_options = {"weight_decay": args.weight_decay, "schedule": args.schedule}
    if args.momentum is not None:
        if args.optimizer == "adam":
            raise ValueError("--momentum applies to the sgd, momentum and nesterov optimizers, not adam")
        optimizer_options["momentum"] = args.momentum
    patience = args.early_stopping
    if patience is None and args.validation_size:
        patience = DEFAULT_PATIENCE
    settings = {
        "data": name,
        "target": target,
        "task": task,
        "hidden": args.hidden,
        "activation": args.activation,
        "output": model.network.head.output.name,
        "loss": model.network.head.loss.name,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        **optimizer_options,
        "early_stopping": patience,
        "dropout": args.dropout,
        "norm": args.norm,
        "class_weight": args.class_weight,
        "impute": args.impute,
        "seed": args.seed,
        "test_size": args.test_size,
        "validation_size": args.validation_size,
        "max_categories": args.max_categories,
        "min_frequency": args.min_frequency,
        "scaling": args.scaling,
        "scale_target": args.scale_target,
        "bins": args.bins,
    }
    start = time.perf_counter()
    history = model.fit(
        train_cols,
        y_train,
        target=target,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        validation_data=validation,
        verbose=chatty,
        early_stopping=patience,
        class_weight=args.class_weight,
        checkpoint=args.checkpoint if lead else None,
        resume=args.resume,
        comm=comm if comm.size > 1 else None,
        **optimizer_options,
    )
    seconds = time.perf_counter() - start
    failure = None
    if lead:
        try:
            data = (name, task, target, test_cols, y_train, y_test, validation)
            _report(args, model, history, seconds, settings, data, comm.size)
        except USER_ERRORS as exc:
            failure = exc
    # no process ends before rank 0 has saved (or failed to), and all end as rank 0 did
    if comm.size > 1 and comm.broadcast_value(failure is not None) and failure is None:
        raise _FailedOnRankZero
    if failure is not None:
        raise failure
    return 0


def _report(
    args: argparse.Namespace,
    model: TabularModel,
    history: Any,
    seconds: float,
    settings: dict,
    data: tuple,
    processes: int = 1,
) -> None:
    """Rank 0's part of ``train``: the test figures, the saved model, the JSON or the lines, the plot."""
    _name, task, target, test_cols, y_train, y_test, validation = data
    test = model.evaluate(test_cols, y_test)
    metric = test["metric"]
    model.info = {
        "training": settings,
        "epochs_trained": history.epochs,
        "test": {metric: test[metric], "loss": test["loss"], "rows": test["rows"]},
    }
    if args.save:
        save(model, args.save)
    if args.json:
        result = {
            "task": task,
            "target": target,
            "classes": test.get("classes"),
            "rows": {"train": len(y_train), "validation": len(validation[1]) if validation else 0, "test": len(y_test)},
            "epochs": history.epochs,
            "seconds": seconds,
            **_where(model._check_fitted(), args.batch_size, processes),
            "test": test,
            "history": history.to_dict(),
            "model": args.save,
        }
        print(json.dumps(result))
        return
    print(
        f"test {metric}: {test[metric]:.4f} ({history.epochs} epochs in {seconds:.2f} s on "
        f"{model.network.backend.name})"
    )
    if args.save:
        print(f"saved the model to {args.save}")
    if args.plot:
        from .plotting import plot_training

        two_d = model.network.n_features == 2
        plot_training(
            history,
            args.plot,
            model=model.network if two_d else None,
            data=(model.encode(test_cols), model.encode_target(y_test)) if two_d else None,
        )
        print(f"saved the curves to {args.plot}")


def _load_tabular(path: str) -> TabularModel:
    model = load(path)
    if not isinstance(model, TabularModel):
        raise ValueError(
            f"{path} holds a network without a table encoding; save models with anybackprop train --save "
            f"(or ab.save(TabularModel)) to predict on tables"
        )
    return model


def _predict(args: argparse.Namespace) -> int:
    _check_destination(args.output, "--output")
    model = _load_tabular(args.model)
    columns = datasets.read_table(args.data, **_file_options(args))
    if args.proba:
        probabilities = model.predict_proba(columns)  # a ValueError for a regressor
        header = [str(c) for c in model.classes]
        lines = [[repr(float(v)) for v in row] for row in probabilities]
    else:
        header = ["prediction"]
        lines = [[str(v) if model.classes is not None else repr(float(v))] for v in model.predict(columns)]
    text = csv_text(header, lines)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text(args.output, text)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model = _load_tabular(args.model)
    target = args.target or model.target
    columns, y = datasets.load_table(args.data, target=target, **_file_options(args))
    result = model.evaluate(columns, y)
    if args.json:
        print(json.dumps(result))
        return 0
    metric = result["metric"]
    print(f"{metric}: {result[metric]:.4f} on {result['rows']} rows of {args.data}")
    print(f"loss: {result['loss']:.4f} ({model.network.head.loss.name})")
    if "mae" in result:
        print(f"mae: {result['mae']:.4g}  rmse: {result['rmse']:.4g}")
    if "per_class" in result:
        width = max(9, *(len(str(c)) for c in result["per_class"]))
        print(f"{'class':>{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}")
        for label, m in result["per_class"].items():
            print(f"{label:>{width}} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>9d}")
    if "confusion" in result:
        names = [str(c) for c in result["classes"]]
        width = max(6, *(len(n) for n in names), *(len(str(v)) for row in result["confusion"] for v in row))
        print("confusion matrix (rows: true class, columns: predicted class):")
        print(" " * width + " " + " ".join(f"{n:>{width}}" for n in names))
        for n, row in zip(names, result["confusion"], strict=True):
            print(f"{n:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx

    _check_destination(args.out, "OUT.onnx")
    export_onnx(load(args.model), args.out)
    print(f"wrote the ONNX inference graph to {args.out}")
    return 0


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
    for output in HEADS:
        n_out = 3 if output != "sigmoid" else 1
        Y = {
            "softmax": rng.integers(0, 3, 8),
            "sigmoid": rng.integers(0, 2, 8),
            "identity": rng.standard_normal((8, 3)),
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


if __name__ == "__main__":
    raise SystemExit(main())
