"""The ``anybackprop`` command: ``train``, ``predict``, ``evaluate``, ``export``, ``info``, ``gradcheck``
and ``selftest``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import datasets, distributed, threads
from .backend import environment_backend, use_backend
from .cli_args import build_parser
from .cli_checks import _gradcheck, _info, _selftest
from .files import csv_text, write_text
from .io import load, save
from .network import Sequential
from .tables import TabularModel, auto_batch_size, auto_patience, check_complete, infer_task, warn_one_network


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status: 0 done, 1 a check failed, 2 bad input, 130 interrupted
    (Ctrl-C: one line, no traceback, no half-written file), 141 the reader closed the pipe."""
    args = build_parser().parse_args(argv)
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
    threads each process trained with (None where the arrays are not on the host)."""
    backend = network.backend
    blas = threads.in_force(backend, threads.largest_product(network.layers, batch_size))
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
    mlp = {
        "activation": args.activation,
        "seed": args.seed,
        "dropout": args.dropout or None,
        "norm": args.norm,
        "feature_scale": args.feature_scale,
    }
    if args.loss is not None:
        mlp["loss"] = args.loss
    # a checkpoint follows one network: the default then trains one (as TabularModel.fit would), and says so
    followed = None
    if args.ensemble is None and (args.checkpoint or args.resume):
        followed = "--checkpoint" if args.checkpoint else "--resume"
    scaling = {
        "standardize": args.scaling != "none" and args.scaling,
        "scale_target": args.scale_target,
        "ensemble": 1 if followed else args.ensemble,
    }
    scaling["bins"] = args.bins or None  # 0: none
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
    validation = None  # carved from the training rows: the test rows are used once, at the end
    if args.validation_size:
        train_cols, y_train, validation = model.hold_out(train_cols, y_train, args.validation_size, args.seed)
    model.prepare(train_cols, y_train, target, args.optimizer)
    if followed and model.task is not None:  # (prepare set the task)
        warn_one_network(followed, model.task, len(y_train))
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
        networks = f"{len(model.members)} x " if len(model.members) > 1 else ""
        print(f"{name}: {len(y_train)} training{held} and {len(y_test)} test rows; {networks}{model.network}")
    optimizer_options = {"weight_decay": args.weight_decay, "schedule": args.schedule}
    if args.momentum is not None:
        if args.optimizer == "adam":
            raise ValueError("--momentum applies to the sgd, momentum and nesterov optimizers, not adam")
        optimizer_options["momentum"] = args.momentum
    batch_size = args.batch_size or auto_batch_size(len(y_train))
    patience = args.early_stopping
    if patience is None and args.validation_size:
        patience = auto_patience(len(y_train))
    settings = {
        "data": name,
        "target": target,
        "task": task,
        "hidden": args.hidden,
        "activation": args.activation,
        "output": model.network.head.output.name,
        "loss": model.network.head.loss.name,
        "epochs": args.epochs,
        "batch_size": batch_size,
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
        "feature_scale": model.network.feature_scale,  # the gain "auto" chose (prepare built the network)
    }
    start = time.perf_counter()
    history = model.fit(
        train_cols,
        y_train,
        target=target,
        epochs=args.epochs,
        batch_size=batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        validation_data=validation,
        verbose=chatty,
        early_stopping=patience,
        class_weight=args.class_weight,
        checkpoint=args.checkpoint,  # every process passes it (the callbacks agree); rank 0 writes it
        resume=args.resume,
        comm=comm if comm.size > 1 else None,
        **optimizer_options,
    )
    seconds = time.perf_counter() - start
    settings["ensemble"] = len(model.members)
    settings["bins"] = model.network.bins or 0  # what --bins auto chose (its validation losses in bins_choice)
    if model.bins_choice is not None:
        settings["bins_choice"] = list(model.bins_choice["validation_loss"])
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
        **({"member_epochs": [h.epochs for h in model.histories]} if len(model.histories) > 1 else {}),
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
            "ensemble": len(model.members),
            "member_epochs": [h.epochs for h in model.histories],
            "bins": settings["bins"],
            **({"bins_choice": settings["bins_choice"]} if "bins_choice" in settings else {}),
            "seconds": seconds,
            **_where(model._check_fitted(), settings["batch_size"], processes),
            "test": test,
            "history": history.to_dict(),
            "model": args.save,
        }
        print(json.dumps(result))
        return
    epochs = f"{history.epochs} epochs"
    if len(model.histories) > 1:
        epochs = f"{len(model.histories)} networks averaged, {'/'.join(str(h.epochs) for h in model.histories)} epochs"
    if model.bins_choice is not None:  # what --bins auto kept
        epochs = f"{model.bins_choice['bins'] or 'no'} bins, {epochs}"
    print(f"test {metric}: {test[metric]:.4f} ({epochs} in {seconds:.2f} s on {model.network.backend.name})")
    if args.save:
        print(f"saved the model to {args.save}")
    if args.plot:
        from .plotting import plot_training

        two_d = model.network.n_features == 2
        plot_training(
            history,
            args.plot,
            model=model.predictor() if two_d else None,
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


if __name__ == "__main__":
    raise SystemExit(main())
