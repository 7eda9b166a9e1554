"""scikit-learn estimators that train an anybackprop MLP on any backend.

``MLPClassifier`` and ``MLPRegressor`` follow scikit-learn's conventions and its own MLP's
parameter names where they mean the same thing. They take NumPy (or anything scikit-learn's
``validate_data`` accepts) and return NumPy, while the training runs on the chosen anybackprop
backend (``backend=None``: the current one; "cupy": on the GPU). The fitted state is NumPy
(``coefs_``, ``intercepts_``, and ``params_``/``state_`` with every parameter and running
average), so a model trained on a GPU pickles and unpickles anywhere: where its backend is not
usable it predicts (and ``partial_fit`` trains) with NumPy after a :class:`BackendFallbackWarning`.
A pickle or deep copy also keeps the optimizer's state (as NumPy), so ``partial_fit`` on the copy
continues exactly as on the original. Parameters are validated at ``fit`` (and the first
``partial_fit``) by scikit-learn's ``_parameter_constraints``; scipy sparse input is refused
(TypeError: call ``.toarray()``). ``dropout`` and ``norm``
("batch", "layer") are passed to :class:`~anybackprop.MLP`; ``fit`` and ``partial_fit`` take
``sample_weight``.

scikit-learn is an optional dependency: ``pip install 'anybackprop[sklearn]'``.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from .backend import ADAPTERS, Backend, backend_for, to_numpy, unavailable_reason
from .layers import NORMS
from .network import MLP
from .optim import OPTIMIZERS, Optimizer

_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
}
_SOLVERS = tuple(OPTIMIZERS)


class BackendFallbackWarning(UserWarning):
    """A fitted estimator's backend is not usable here: it predicts (and trains) on NumPy."""


class _MLPBase(BaseEstimator):
    """Parameters shared by both estimators; ``__init__`` only stores them. ``fit`` (and the
    first ``partial_fit``) validates them with scikit-learn's machinery: a wrong value raises
    ``InvalidParameterError`` (a ValueError and a TypeError) naming the parameter."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions(set(_SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "norm": [StrOptions(set(NORMS)), None],
        "backend": [StrOptions(set(ADAPTERS) | {"auto"}), Backend, None],
        "dtype": [StrOptions({"float32", "float64"}), None, type, np.dtype],
    }

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

    def _invalid(self, name: str, expected: str) -> InvalidParameterError:
        return InvalidParameterError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. Got {getattr(self, name)!r} instead."
        )

    def _check_params(self) -> None:
        self._validate_params()
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
        if self.solver == "nesterov" and self.momentum <= 0:
            raise self._invalid("momentum", "> 0 with solver='nesterov'")
        backend_for(self.backend)  # an unusable backend fails now, naming backend=
        self._sizes = tuple(int(n) for n in sizes)

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
        return OPTIMIZERS[self.solver].build(
            lr=self.learning_rate_init, weight_decay=self.alpha / (batch * mean_weight), **options
        )

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        _refuse_sparse(X, "X")
        return validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))

    def _train(
        self, X: Any, y: Any, *, epochs: int, first: bool, classes: Any = None, sample_weight: Any = None
    ) -> _MLPBase:
        if first:
            self._check_params()
        _refuse_sparse(X, "X")
        _refuse_sparse(y, "y")
        _refuse_sparse(sample_weight, "sample_weight")
        X, y = validate_data(
            self, X, y, reset=first, dtype=(np.float64, np.float32), y_numeric=self._y_numeric, multi_output=True
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        Y = self._targets(y, reset=first, classes=classes)
        init_seed, shuffle_seed = self._seeds()
        if first:
            if self.dtype is None:
                self._dtype = "float32" if X.dtype == np.float32 else "float64"
            else:
                self._dtype = np.dtype(self.dtype).name
            self._model = self._build_model([X.shape[1], *self._sizes, self._n_outputs], init_seed)
            mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
            self._optimizer = self._new_optimizer(self._batch(X.shape[0]), mean_weight if mean_weight > 0 else 1.0)
            self._weight_decay = self._optimizer.weight_decay  # to rebuild the optimizer after unpickling
            self.loss_curve_: list[float] = []
            self.n_iter_ = 0
            self.best_validation_score_: float | None = None
            self.validation_scores_: list[float] | None = None
        model = self._get_model()
        optimizer = self._get_optimizer(model)
        if epochs > 1 and self.early_stopping:
            history_loss = self._fit_early_stopping(model, optimizer, X, y, Y, sample_weight, epochs, shuffle_seed)
        else:
            kwargs: dict[str, Any] = {}
            if epochs > 1:
                kwargs["callbacks"] = [_TrainingLossStopping(self.n_iter_no_change, self.tol)]
            history = model.fit(
                X,
                Y,
                epochs=epochs,
                batch_size=self._batch(X.shape[0]),
                optimizer=optimizer,
                seed=shuffle_seed + self.n_iter_,
                verbose=self.verbose,
                sample_weight=sample_weight,
                **kwargs,
            )
            history_loss = history.loss
        self.loss_curve_ = self.loss_curve_ + history_loss
        self.n_iter_ += len(history_loss)
        self._store_fitted(model)
        return self

    def _fit_early_stopping(
        self,
        model: MLP,
        optimizer: Optimizer,
        X: np.ndarray,
        y: np.ndarray,
        Y: np.ndarray,
        sample_weight: Any,
        epochs: int,
        shuffle_seed: int,
    ) -> list[float]:
        """scikit-learn's early stopping: hold out ``validation_fraction`` of the rows (stratified
        for a classifier), score the held-out rows after every epoch (accuracy, or R^2), stop
        after more than ``n_iter_no_change`` epochs without the score improving by ``tol``, and
        keep the parameters of the best-scoring epoch."""
        stratify = y if not self._y_numeric and _can_stratify(y, self.validation_fraction) else None
        parts = [X, Y] if sample_weight is None else [X, Y, sample_weight]
        split = train_test_split(
            *parts, test_size=self.validation_fraction, random_state=shuffle_seed, stratify=stratify
        )
        X, X_val, Y, Y_val = split[:4]
        sample_weight, w_val = (split[4], split[5]) if sample_weight is not None else (None, None)
        batch = self._batch(X.shape[0])
        losses: list[float] = []
        self.validation_scores_, self.validation_loss_curve_ = [], []
        self.best_validation_score_ = -np.inf
        best = None
        no_improvement = 0
        for epoch in range(epochs):
            history = model.fit(
                X,
                Y,
                epochs=1,
                batch_size=batch,
                optimizer=optimizer,
                seed=shuffle_seed + self.n_iter_ + epoch,
                verbose=False,
                sample_weight=sample_weight,
            )
            losses += history.loss
            score = self._validation_score(model, X_val, Y_val, w_val)
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(model.loss(X_val, Y_val, w_val))
            if self.verbose:
                print(
                    f"Iteration {self.n_iter_ + epoch + 1}, loss = {history.loss[-1]:.8f}, validation score = "
                    f"{score:.6f}",
                    flush=True,
                )
            no_improvement = no_improvement + 1 if score < self.best_validation_score_ + self.tol else 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best = (
                    {k: to_numpy(v).copy() for k, v in model.params.items()},
                    {k: to_numpy(v).copy() for k, v in model.state.items()},
                )
            if no_improvement > self.n_iter_no_change:
                if self.verbose:
                    print(
                        f"Validation score did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                        "consecutive epochs. Stopping."
                    )
                break
        if best is not None:  # the parameters of the best-scoring epoch, as scikit-learn keeps them
            model.set_params(best[0])
            model.set_state(best[1])
        self.best_validation_score_ = float(self.best_validation_score_)
        return losses

    def _validation_score(self, model: MLP, X_val: np.ndarray, Y_val: np.ndarray, w_val: Any) -> float:
        out = to_numpy(model.forward(X_val))
        if self._y_numeric:
            return float(r2_score(Y_val, out, sample_weight=w_val))
        predicted = np.argmax(out, axis=1) if out.shape[1] > 1 else (out[:, 0] >= 0.5).astype(np.int64)
        return float(accuracy_score(Y_val, predicted, sample_weight=w_val))

    def _store_fitted(self, model: MLP) -> None:
        n_layers = len(model.layer_sizes) - 1
        self.coefs_ = [to_numpy(model.params[f"W{i}"]) for i in range(1, n_layers + 1)]
        self.intercepts_ = [to_numpy(model.params[f"b{i}"]) for i in range(1, n_layers + 1)]
        self.params_ = {k: to_numpy(v) for k, v in model.params.items()}  # with norm: gamma{i}, beta{i} too
        self.state_ = {k: to_numpy(v) for k, v in model.state.items()}  # batch norm's running averages

    def _build_model(self, sizes: list[int], seed: int | None) -> MLP:
        if self._output == "softmax" and sizes[-1] < 2:  # it would predict probability 1 for every row
            raise ValueError(
                f"a softmax output needs at least 2 units, got {sizes[-1]}; use a sigmoid output for 2 classes"
            )
        return MLP(
            sizes,
            activation=_ACTIVATIONS[self.activation],
            output=self._output,
            seed=seed,
            dtype=self._dtype,
            backend=self._usable_backend(),
            dropout=self.dropout or None,
            norm=self.norm,
        )

    def _usable_backend(self) -> Backend:
        """This estimator's backend; for a fitted estimator whose named backend is not usable
        here (fitted with torch or cupy, unpickled without it), NumPy with a warning."""
        name = self.backend
        if hasattr(self, "coefs_") and isinstance(name, str) and name in ADAPTERS:
            reason = unavailable_reason(name)
            if reason is not None:
                warnings.warn(
                    f"{type(self).__name__} was fitted with backend={name!r}, which is not usable here ({reason}); "
                    f"its fitted state is NumPy, so it predicts and trains with backend='numpy' instead",
                    BackendFallbackWarning,
                    stacklevel=5,
                )
                return backend_for("numpy")
        return backend_for(name)

    def _get_model(self) -> MLP:
        """The trained network on this estimator's backend, rebuilt from ``params_``/``state_`` after unpickling."""
        model = self.__dict__.get("_model")
        if model is None:
            model = self._build_model([self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)], None)
            model.set_params(self.params_)
            model.set_state(self.state_)
            self._model = model
        return model

    def _get_optimizer(self, model: MLP) -> Optimizer:
        """The optimizer, rebuilt after unpickling or copying with the state it had (NumPy in the
        pickle, moved to the model's backend), so that ``partial_fit`` continues where it was."""
        optimizer = self.__dict__.get("_optimizer")
        if optimizer is not None:
            return optimizer
        saved = self.__dict__.pop("_optimizer_state", None)
        options = {"momentum": self.momentum} if self.solver in ("momentum", "nesterov") else {}
        weight_decay = self.__dict__.get("_weight_decay", self.alpha / 200)  # older pickles: batch "auto"'s cap
        optimizer = OPTIMIZERS[self.solver].build(lr=self.learning_rate_init, weight_decay=weight_decay, **options)
        if saved and saved["solver"] == self.solver:
            optimizer.init(model)
            counters = {name: saved["t"] for name in optimizer.counters if name == "t" and saved.get("t") is not None}
            optimizer.load_state(model, saved["state"], counters)  # checked: slots, keys and shapes
        self._optimizer = optimizer
        return optimizer

    def __getstate__(self) -> dict:
        """Pickles (and deep copies) hold NumPy only: the device model is left out and rebuilt
        from ``params_``/``state_``; the optimizer's state goes as NumPy arrays and is rebuilt on
        the model's backend, so ``partial_fit`` continues as it would have."""
        state = dict(super().__getstate__())
        state.pop("_model", None)
        optimizer = state.pop("_optimizer", None)
        if optimizer is not None and optimizer.state is not None:
            state["_optimizer_state"] = {
                "solver": self.solver,
                "state": {
                    slot: {k: to_numpy(v).copy() for k, v in arrays.items()} for slot, arrays in optimizer.state.items()
                },
                "t": getattr(optimizer, "t", None),
            }
        return state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _MLPBase:
        """Train from scratch for up to ``max_iter`` epochs, stopping early as scikit-learn's MLP
        does: without ``early_stopping``, after ``n_iter_no_change`` epochs without the training
        loss improving by ``tol``; with it, after more than ``n_iter_no_change`` epochs without
        the validation score (accuracy, R^2) improving by ``tol``, keeping the best epoch's
        parameters (``validation_scores_``, ``best_validation_score_``). ``sample_weight``
        weighs each row's loss."""
        return self._train(X, y, epochs=self.max_iter, first=True, sample_weight=sample_weight)

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coefs_")
        X = self._validate_X(X, reset=False)
        return to_numpy(self._get_model().forward(X))


def _refuse_sparse(x: Any, name: str) -> None:
    if scipy.sparse.issparse(x):
        raise TypeError(f"{name} is a scipy sparse {type(x).__name__}: sparse input is not supported; call .toarray()")


class _TrainingLossStopping:
    """scikit-learn's MLP rule without a validation split: stop once the training loss has gone
    more than ``patience`` epochs without falling below the best by ``tol``; the last epoch's
    weights are kept (no restore), as scikit-learn keeps them."""

    def __init__(self, patience: int, tol: float) -> None:
        self.patience, self.tol = patience, tol
        self.best, self.count = float("inf"), 0

    def __call__(self, epoch: int, history: Any, model: Any) -> bool:
        loss = history.loss[-1]
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        return self.count > self.patience


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
                raise ValueError(
                    f"MLPClassifier needs at least 2 classes to learn from; got 1 class ({self.classes_.tolist()[0]!r})"
                )
            self._output = "sigmoid" if len(self.classes_) == 2 else "softmax"
            self._n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y has classes {unseen.tolist()} not in classes_ {self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> MLPClassifier:
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

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
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
