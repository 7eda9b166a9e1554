"""The parameters of :mod:`anybackprop.sklearn`'s estimators: their names and defaults (``__init__``
stores them, as scikit-learn requires), the values each accepts, and the checks every ``fit`` and
``partial_fit`` runs, with scikit-learn's messages."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, InvalidParameterError, Options, StrOptions

from .backend import ADAPTERS, Backend, backend_for
from .layers import NORMS

_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
}


class _MLPParameters(BaseEstimator):
    """Parameters shared by both estimators; ``__init__`` only stores them. Every ``fit`` and
    ``partial_fit`` validates them with scikit-learn's machinery: a wrong value raises
    ``InvalidParameterError`` (a ValueError and a TypeError) naming the parameter."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "norm": [StrOptions(set(NORMS)), None],
        "backend": [StrOptions(set(ADAPTERS) | {"auto"}), Backend, None],
        "dtype": [StrOptions({"float32", "float64"}), None, type, np.dtype],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        dropout: float = 0.0,
        norm: str | None = None,
        backend: str | None = None,
        dtype: str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.norm = norm
        self.backend = backend
        self.dtype = dtype

    def _invalid(self, name: str, expected: str) -> InvalidParameterError:
        return InvalidParameterError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. Got {getattr(self, name)!r} instead."
        )

    def _check_params(self) -> None:
        self._validate_params()
        expected = {
            "max_iter": "an int in the range [1, inf)",
            "max_fun": "an int in the range [1, inf)",
            "batch_size": "a str among {'auto'} or an int in the range [1, inf)",
            "n_iter_no_change": "an int in the range [1, inf) or a float among {inf}",
        }
        for name, what in expected.items():  # scikit-learn's int constraints take True for 1
            if isinstance(getattr(self, name), (bool, np.bool_)):
                raise self._invalid(name, what)
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(np.ravel(np.asarray(sizes, dtype=object)))
        if any(isinstance(n, (bool, np.bool_)) or not isinstance(n, Integral) or n < 1 for n in sizes):
            raise self._invalid("hidden_layer_sizes", "an int >= 1 or a sequence of ints >= 1")
        if isinstance(self.dropout, (list, tuple)) and (
            len(self.dropout) != len(sizes)
            or any(isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1 for p in self.dropout)
        ):
            raise self._invalid(
                "dropout", f"a float in [0, 1) or a list of {len(sizes)} such floats (one per hidden layer)"
            )
        if self.dtype is not None and not isinstance(self.dtype, str):
            try:
                name = np.dtype(self.dtype).name
            except TypeError:
                name = None
            if name not in ("float32", "float64"):
                raise self._invalid("dtype", "'float32', 'float64', np.float32, np.float64 or None")
        if self.solver == "lbfgs" and (np.any(np.asarray(self.dropout, dtype=float) > 0) or self.norm == "batch"):
            what = "dropout" if np.any(np.asarray(self.dropout, dtype=float) > 0) else "norm"
            raise self._invalid(what, f"{'0' if what == 'dropout' else 'None or layer'} with solver='lbfgs'")
        if not hasattr(self, "coefs_"):  # an unusable backend fails now, naming backend= (a fitted one falls back)
            backend_for(self.backend)
        self._sizes = [int(n) for n in sizes]
