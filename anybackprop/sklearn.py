"""scikit-learn estimators that train an anybackprop MLP on any backend.

``MLPClassifier`` and ``MLPRegressor`` follow scikit-learn's conventions and its own MLP's
parameter names where they mean the same thing. They take NumPy (or anything scikit-learn's
``validate_data`` accepts) and return NumPy, while the training runs on the chosen anybackprop
backend (``backend=None``: the current one; "cupy": on the GPU). The fitted state is NumPy
(``coefs_``, ``intercepts_``, and ``params_``/``state_`` with every parameter and running
average), so a model trained on a GPU pickles and unpickles anywhere. ``dropout`` and ``norm``
("batch", "layer") are passed to :class:`~anybackprop.MLP`; ``fit`` and ``partial_fit`` take
``sample_weight``.

scikit-learn is an optional dependency: ``pip install 'anybackprop[sklearn]'``.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from .backend import backend_for, to_numpy
from .network import MLP
from .optim import OPTIMIZERS, Optimizer

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu"}
_SOLVERS = tuple(OPTIMIZERS)


class _MLPBase(BaseEstimator):
    """Parameters shared by both estimators; ``__init__`` only stores them."""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        momentum: float = 0.9,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
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
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dropout = dropout
        self.norm = norm
        self.dtype = dtype

    # --- what subclasses define ------------------------------------------------------------------

    _output = "identity"  # the classifier sets its own at fit time
    _y_numeric = True

    def _targets(self, y: np.ndarray, reset: bool, classes: Any = None) -> np.ndarray:
        raise NotImplementedError

    # --- fitting -----------------------------------------------------------------------------------

    def _check_params(self) -> None:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if any(not isinstance(n, Integral) or n < 1 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not supported; accepted values: {', '.join(_ACTIVATIONS)}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver {self.solver!r} is not supported; accepted values: {', '.join(_SOLVERS)}")
        if not (isinstance(self.max_iter, Integral) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if self.batch_size != "auto" and not (isinstance(self.batch_size, Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {self.batch_size!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        self._sizes = sizes

    def _seeds(self) -> tuple[int, int]:
        """(initial weights seed, shuffling seed): the int ``random_state`` itself for both, so
        that ``MLP(..., seed=s).fit(..., seed=s)`` reproduces an estimator with random_state=s."""
        if isinstance(self.random_state, Integral):
            return int(self.random_state), int(self.random_state)
        rs = check_random_state(self.random_state)
        return int(rs.randint(2**31 - 1)), int(rs.randint(2**31 - 1))

    def _batch(self, n_samples: int) -> int:
        return min(200, n_samples) if self.batch_size == "auto" else min(int(self.batch_size), n_samples)

    def _new_optimizer(self, batch: int, mean_weight: float = 1.0) -> Optimizer:
        # scikit-learn's L2 term alpha/(2 sw_batch) ||W||^2, sw_batch the batch's total weight
        # (n_batch unweighted), has the gradient (alpha / sw_batch) W: so integer weights act as
        # repeated rows, exactly so for a full batch
        options = {"momentum": self.momentum} if self.solver in ("momentum", "nesterov") else {}
        return OPTIMIZERS[self.solver].build(lr=self.learning_rate_init, weight_decay=self.alpha / (batch * mean_weight), **options)

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        return validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))

    def _train(self, X: Any, y: Any, *, epochs: int, first: bool, classes: Any = None, sample_weight: Any = None) -> "_MLPBase":
        if first:
            self._check_params()
        X, y = validate_data(self, X, y, reset=first, dtype=(np.float64, np.float32), y_numeric=self._y_numeric, multi_output=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        Y = self._targets(y, reset=first, classes=classes)
        init_seed, shuffle_seed = self._seeds()
        if first:
            self._dtype = self.dtype or ("float32" if X.dtype == np.float32 else "float64")
            self._model = self._build_model([X.shape[1], *self._sizes, self._n_outputs], init_seed)
            mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
            self._optimizer = self._new_optimizer(self._batch(X.shape[0]), mean_weight if mean_weight > 0 else 1.0)
            self.loss_curve_ = []
            self.n_iter_ = 0
        model = self._get_model()
        kwargs: dict[str, Any] = {}
        if epochs > 1:
            kwargs["early_stopping"] = self.n_iter_no_change
            kwargs["min_delta"] = self.tol
            if self.early_stopping:
                stratify = y if not self._y_numeric and _can_stratify(y, self.validation_fraction) else None
                parts = [X, Y] if sample_weight is None else [X, Y, sample_weight]
                split = train_test_split(*parts, test_size=self.validation_fraction, random_state=shuffle_seed, stratify=stratify)
                X, Y, sample_weight = split[0], split[2], (split[4] if sample_weight is not None else None)
                kwargs["validation_data"] = (split[1], split[3]) + ((split[5],) if sample_weight is not None else ())
        history = model.fit(
            X, Y, epochs=epochs, batch_size=self._batch(X.shape[0]), optimizer=self._optimizer,
            seed=shuffle_seed + self.n_iter_, verbose=self.verbose, sample_weight=sample_weight, **kwargs,
        )
        self.loss_curve_ = self.loss_curve_ + history.loss
        self.n_iter_ += history.epochs
        if history.val_loss:
            self.validation_loss_curve_ = history.val_loss
        n_layers = len(model.layer_sizes) - 1
        self.coefs_ = [to_numpy(model.params[f"W{i}"]) for i in range(1, n_layers + 1)]
        self.intercepts_ = [to_numpy(model.params[f"b{i}"]) for i in range(1, n_layers + 1)]
        self.params_ = {k: to_numpy(v) for k, v in model.params.items()}  # with norm: gamma{i}, beta{i} too
        self.state_ = {k: to_numpy(v) for k, v in model.state.items()}  # batch norm's running averages
        return self

    def _build_model(self, sizes: list[int], seed: int | None) -> MLP:
        return MLP(
            sizes, activation=_ACTIVATIONS[self.activation], output=self._output, seed=seed, dtype=self._dtype,
            backend=backend_for(self.backend), dropout=self.dropout or None, norm=self.norm,
        )

    def _get_model(self) -> MLP:
        """The trained network on this estimator's backend, rebuilt from ``params_``/``state_`` after unpickling."""
        model = self.__dict__.get("_model")
        if model is None:
            model = self._build_model([self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)], None)
            model.set_params(self.params_)
            model.set_state(self.state_)
            self._model = model
        return model

    def __getstate__(self) -> dict:
        """Pickles hold NumPy only: the device model and optimizer state are left out."""
        state = self.__dict__.copy()
        state.pop("_model", None)
        state.pop("_optimizer", None)
        return state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_MLPBase":
        """Train from scratch for up to ``max_iter`` epochs (stopping early as scikit-learn's MLP
        does: ``n_iter_no_change`` epochs without an improvement of ``tol``); ``sample_weight``
        weighs each row's loss."""
        return self._train(X, y, epochs=self.max_iter, first=True, sample_weight=sample_weight)

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coefs_")
        X = self._validate_X(X, reset=False)
        return to_numpy(self._get_model().forward(X))


def _can_stratify(y: np.ndarray, fraction: float) -> bool:
    counts = np.unique(y, return_counts=True)[1]
    return counts.min() >= 2 and len(y) * fraction >= len(counts)


class MLPClassifier(ClassifierMixin, _MLPBase):
    """An MLP classifier: a sigmoid output for two classes, softmax for more; any labels
    (strings, non-contiguous ints) through ``classes_``."""

    _y_numeric = False

    def _targets(self, y: np.ndarray, reset: bool, classes: Any = None) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(f"MLPClassifier needs at least 2 classes to learn from; got 1 class ({self.classes_[0]!r})")
            self._output = "sigmoid" if len(self.classes_) == 2 else "softmax"
            self._n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y has classes {unseen.tolist()} not in classes_ {self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "MLPClassifier":
        """One epoch over ``(X, y)``; the first call needs ``classes`` (all the labels)."""
        first = not hasattr(self, "coefs_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._train(X, y, epochs=1, first=first, classes=classes, sample_weight=sample_weight)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        a = self._forward(X)
        return np.hstack([1.0 - a, a]) if len(self.classes_) == 2 else a

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row (the argmax of :meth:`predict_proba`)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _MLPBase):
    """An MLP regressor: identity output and squared error; one or several targets."""

    def _targets(self, y: np.ndarray, reset: bool, classes: Any = None) -> np.ndarray:
        y = np.asarray(y)
        if reset:
            self._y_1d = y.ndim == 1
            self._n_outputs = 1 if y.ndim == 1 else y.shape[1]
        elif (y.ndim == 1) != self._y_1d or (y.ndim == 2 and y.shape[1] != self._n_outputs):
            raise ValueError(f"y has shape {y.shape}; this regressor was fitted with {self._n_outputs} target(s)")
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over ``(X, y)``, continuing from the current weights."""
        return self._train(X, y, epochs=1, first=not hasattr(self, "coefs_"), sample_weight=sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: ``(n_samples,)`` for a single target, else ``(n_samples, n_targets)``."""
        out = self._forward(X)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
