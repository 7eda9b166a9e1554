"""The ``anybackprop`` command's arguments: :func:`build_parser` (every subcommand and its flags)
and the argument types that check a flag's value as the user wrote it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import __version__, datasets
from .backend import BACKEND_NAMES, DTYPE_NAMES
from .ensemble import MAX_MEMBERS
from .heads import HEADS
from .layers import NORMS, SCALERS
from .layers.scaled_dense import GAINS
from .losses import LOSSES
from .network import HIDDEN_ACTIVATIONS
from .optim import OPTIMIZERS, SCHEDULES
from .tables import (
    BATCH_MAX,
    BATCH_SIZE,
    BATCH_STEPS,
    ENSEMBLE_CLASSIFICATION,
    ENSEMBLE_MAX,
    ENSEMBLE_ROWS,
    FEATURE_SCALE,
    IMPUTE,
    MAX_CATEGORIES,
    PATIENCE,
    PATIENCE_MIN,
    PATIENCE_ROWS,
    TASKS,
)


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


def _members(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_MEMBERS:
        raise argparse.ArgumentTypeError(f"expected a count of networks from 1 to {MAX_MEMBERS}, got {text!r}")
    return value


def _feature_scale(text: str) -> str | float | None:
    """``--feature-scale``: "auto", "off" (None) or a positive finite gain."""
    if text in ("auto", "off"):
        return None if text == "off" else text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not GAINS[0] <= value <= GAINS[1]:
        raise argparse.ArgumentTypeError(
            f"expected auto, off or a gain from {GAINS[0]:g} to {GAINS[1]:g}, got {text!r}"
        )
    return value


def _bins(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _seed(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or a non-negative int, got {text!r}") from None


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


def build_parser() -> argparse.ArgumentParser:
    """The ``anybackprop`` command's argument parser: every subcommand with its flags, their types and defaults."""
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
        help="train an MLP (or an ensemble of them) on a bundled dataset or your own table and print its test metric",
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
    train.add_argument(
        "--loss",
        choices=tuple(name for name in LOSSES if name != "poisson"),  # poisson needs the exp output, not offered here
        default=None,
        help="loss (None: the output's pair)",
    )
    train.add_argument(
        "--epochs", type=_positive(int), default=100, help="most epochs (early stopping usually ends sooner)"
    )
    train.add_argument(
        "--batch-size",
        type=_positive(int),
        default=None,
        help=f"rows per step (None: {BATCH_SIZE}, or on more than {BATCH_SIZE * BATCH_STEPS:,} training rows their "
        f"number / {BATCH_STEPS} rounded up, at most {BATCH_MAX})",
    )
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
        help=f"stop after N epochs without a better validation loss and keep the best weights (None: with a "
        f"--validation-size {PATIENCE}, or on more than {PATIENCE_ROWS // PATIENCE:,} training rows "
        f"{PATIENCE_ROWS:,} // their number, at least {PATIENCE_MIN}; without one off)",
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
        type=_bins,
        default="auto",
        help="piecewise-linear encoding of the numeric columns in this many quantile bins (0: none; auto: "
        "the first network is trained without and with 32, which are kept where they lower its validation "
        "loss by 15%%; none on more than 6,000 training rows or 32 numeric columns, or without a validation "
        "split, or with --checkpoint or --resume)",
    )
    train.add_argument(
        "--ensemble",
        type=_members,
        default=None,
        metavar="N",
        help="train N networks (seeds seed, seed+1, ...) and average their outputs (1: one network; None: "
        f"{ENSEMBLE_ROWS:,} // training rows, from 1 to {ENSEMBLE_CLASSIFICATION} for classification and to "
        f"{ENSEMBLE_MAX} for regression)",
    )
    train.add_argument(
        "--no-target-scaling",
        dest="scale_target",
        action="store_false",
        help="regression: train on the raw target instead of the standardised one",
    )
    train.add_argument(
        "--feature-scale",
        type=_feature_scale,
        default="auto",
        metavar="{auto,off,GAIN}",
        help=f"learn a scale per input of the first layer, its steps GAIN times larger with adam (GAIN^2 with "
        f"sgd; from 0.001 to 1000; auto: {FEATURE_SCALE:g} for regression with adam, else off)",
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
        "--checkpoint",
        metavar="PATH",
        default=None,
        help="write a checkpoint at each epoch's end (None: none; it follows one network: --ensemble then "
        "defaults to 1)",
    )
    train.add_argument(
        "--resume",
        metavar="PATH",
        default=None,
        help="continue from a checkpoint of the same command (None: start afresh; --ensemble then defaults to 1)",
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
