"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, training an anybackprop MLP on any backend.

A scikit-learn user's script runs unchanged with ``from anybackprop.sklearn import MLPClassifier``:
the estimators take every parameter of scikit-learn's MLPs (1.9) with its name, default, meaning
and validation message, and have its attributes and methods. The same call trains the same
model: the initial weights are drawn as scikit-learn draws them (Glorot uniform from
``random_state``), the minibatches come in its order, the solvers are its solvers ("sgd" with
momentum 0.9 and Nesterov by default, its learning-rate schedules, "adam", "lbfgs" through
``scipy.optimize.minimize(method="L-BFGS-B")``), and training stops by its rules. They add
``dropout``, ``norm`` ("batch", "layer"), ``backend`` and ``dtype``.

They take NumPy, pandas or scipy sparse input (CSR/CSC) and return NumPy, while the training runs
on the chosen anybackprop backend (``backend=None``: the current one; "cupy": on the GPU). Dense
training rows enter the device once per ``fit`` (the held-out rows of ``early_stopping`` too);
sparse rows stay on the host and are densified one minibatch at a time, so memory stays bounded.
The fitted state is NumPy (``coefs_``, ``intercepts_``, and ``params_``/``state_`` with every
parameter and running average), so a model trained on a GPU pickles and unpickles anywhere: where
its backend is not usable it predicts (and ``partial_fit`` trains) with NumPy after a
:class:`BackendFallbackWarning`. A pickle or deep copy also keeps the optimizer's state (as
NumPy), so ``partial_fit`` on the copy continues exactly as on the original. Assigning
``coefs_``/``intercepts_`` (as scikit-learn's users may) sets the weights the next ``predict`` or
``partial_fit`` uses; ``learning_rate_`` is the step size the solver ended with (which
scikit-learn keeps private), changed by ``learning_rate="invscaling"`` or ``"adaptive"``.

``solver="lbfgs"`` runs scipy's L-BFGS-B on the host, as scikit-learn does: each evaluation of the
loss sends the flat parameters to the device (one transfer) and brings back the loss and the flat
gradient (one transfer), while the forward and backward passes run on the backend. On a GPU that
is a round trip per evaluation; L-BFGS suits the small problems where that costs little, and
scipy's implementation (its line search, ``max_fun``, ``gtol=tol``) is what makes the results
scikit-learn's. ``dropout`` and ``norm="batch"`` are refused with "lbfgs" (its objective must be
deterministic). The deliberate differences from scikit-learn are listed, with their reasons, in
the README's scikit-learn section.

scikit-learn is an optional dependency: ``pip install 'anybackprop[sklearn]'``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, shuffle
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import threads
from ._sklearn_params import _ACTIVATIONS, _MLPParameters
from .backend import ADAPTERS, Backend, backend_for, gather_rows, host_rng, to_numpy, unavailable_reason
from .losses import normalized_weights
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .training import Trainer
from .validation import check_sample_weight, check_X

_OUTPUTS = {"logistic": "sigmoid", "softmax": "softmax", "identity": "identity", "exp": "exp"}
_STOCHASTIC_SOLVERS = ("sgd", "adam")
_CHUNK_ELEMENTS = 1 << 22  # sparse rows densified per forward chunk (predict, L-BFGS): 4M values


class BackendFallbackWarning(UserWarning):
    """A fitted estimator's backend is not usable here: it predicts (and trains) on NumPy."""


def _stochastic(est: _MLPBase) -> bool:
    """Whether ``partial_fit`` exists: not for "lbfgs" (a misspelt solver gets its validation error)."""
    if est.solver == "lbfgs":
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. {est.solver} is not stochastic."
        )
    return True


class _ScikitLearnAdam(Adam):
    """Adam as scikit-learn writes it: ``epsilon`` added to ``sqrt(v)`` with both bias
    corrections folded into the step, ``lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``
    (the same update as :class:`~anybackprop.optim.Adam` but for where epsilon enters)."""

    def _scalars(self, lr: Any, t: Any) -> dict[str, Any]:
        return {"step_size": lr * (1.0 - self.beta2**t) ** 0.5 / (1.0 - self.beta1**t), "v_scale": 1.0}


class _Trainer(Trainer):
    """Steps with scikit-learn's L2 term per minibatch, ``alpha/(2 sw_b) ||W||^2`` with ``sw_b``
    the minibatch's total weight (its rows, unweighted), whose gradient ``(alpha / sw_b) W`` is the
    optimizer's weight decay for that step: integer weights act as repeated rows."""

    def __init__(self, model: MLP, optimizer: Optimizer, alpha: float) -> None:
        super().__init__(model, optimizer)
        self.alpha = float(alpha)
        self.totals: list[tuple[int, float]] = []
        self._next: Iterator[tuple[int, float]] = iter(())

    def batch_totals(self, n: int, batch: int, sample_weight: np.ndarray | None) -> None:
        """The epoch's minibatches ``(rows, total weight)``, from the host weights in their order."""
        starts = range(0, n, batch)
        if sample_weight is None:
            self.totals = [(min(batch, n - s), float(min(batch, n - s))) for s in starts]
        else:
            self.totals = [(len(part), float(np.sum(part))) for part in (sample_weight[s : s + batch] for s in starts)]
        self._next = iter(self.totals)

    def step(self, x: Any, y: Any, w: Any, rng: Any, part: Any = None) -> Any:
        total = next(self._next)[1]
        self.optimizer.weight_decay = self.alpha / total if total > 0 else 0.0
        return super().step(x, y, w, rng, part)


class _Rows:
    """The rows of ``X`` for a model: on the device when dense (one transfer), on the host as CSR
    when sparse, densified ``rows`` at a time as they are used."""

    def __init__(self, model: MLP, X: Any) -> None:
        self.m = X.shape[0]
        self.sparse = scipy.sparse.issparse(X)
        self.host: Any = X.tocsr() if self.sparse else None
        self.x = None if self.sparse else check_X(model.backend, X, model.n_features, model.dtype)
        self.chunk = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1]))

    def dense(self, model: MLP, index: Any) -> Any:
        """Rows ``index`` (a slice or host indices) of sparse ``X``, dense on the device."""
        return model.backend.asarray(self.host[index].toarray(), model.dtype, name="X")

    def chunks(self, model: MLP) -> Iterator[tuple[Any, int, int]]:
        """``(x, start, stop)``: every row on the device, in one piece when dense."""
        if not self.sparse:
            yield self.x, 0, self.m
            return
        for start in range(0, self.m, self.chunk):
            stop = min(start + self.chunk, self.m)
            yield self.dense(model, slice(start, stop)), start, stop

    def logits(self, model: MLP) -> Any:
        parts = [model.forward_pass(x).logits for x, _, _ in self.chunks(model)]
        return parts[0] if len(parts) == 1 else model.backend.xp.concat(parts, axis=0)


class _MLPBase(_MLPParameters):
    """What both estimators share beyond their parameters (:class:`_MLPParameters`): fitting with
    the stochastic solvers or L-BFGS, the fitted state, prediction."""

    @property
    def _loss_name(self) -> str:
        """The loss scikit-learn reports: the regressor's ``loss``, the classifier's log loss."""
        return getattr(self, "loss", "log_loss")

    # --- fitting -----------------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> _MLPBase:
        self._check_params()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        if Y.ndim == 1:
            Y = Y.reshape((-1, 1))
        self.n_outputs_ = Y.shape[1]
        rs = check_random_state(self.random_state)
        if first:
            self._initialize(Y, [X.shape[1], *self._sizes, Y.shape[1]], X.dtype, rs)
        model = self._model if first else self._get_model()
        if self.solver == "lbfgs":
            self._fit_lbfgs(model, X, Y, sample_weight)
        else:
            self._fit_stochastic(model, X, Y, sample_weight, incremental, rs)
        self._store_fitted(model)
        if not all(np.isfinite(p).all() for p in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large values and need to be "
                "preprocessed."
            )
        return self

    def _initialize(self, Y: np.ndarray, units: list[int], dtype: Any, rs: np.random.RandomState) -> None:
        """A new network with scikit-learn's initial weights (Glorot uniform, bound
        ``sqrt(f / (fan_in + fan_out))``, f = 2 for the logistic activation and 6 otherwise, weights
        then biases, layer by layer, from ``random_state``) and fresh training records."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(units)
        self.out_activation_ = self._out_activation()
        self._dtype = np.dtype(dtype).name if self.dtype is None else np.dtype(self.dtype).name
        model = self._build_model(units)
        factor = 2.0 if _ACTIVATIONS[self.activation] == "sigmoid" else 6.0
        params = dict(model.params)
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(units), start=1):
            bound = np.sqrt(factor / (fan_in + fan_out))
            params[f"W{i}"] = rs.uniform(-bound, bound, (fan_in, fan_out))
            params[f"b{i}"] = rs.uniform(-bound, bound, fan_out)
        model.set_params({k: to_numpy(v) for k, v in params.items()})
        self._model = model
        self.__dict__.pop("_optimizer", None)
        self.__dict__.pop("_optimizer_state", None)
        self._best_params = (
            {k: to_numpy(v) for k, v in model.params.items()},
            {k: to_numpy(v) for k, v in model.state.items()},
        )
        if self.solver in _STOCHASTIC_SOLVERS:
            self._start_records()

    def _start_records(self) -> None:
        """The stochastic solvers' records, empty (at the first fit, or warm-starting one after L-BFGS)."""
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self.validation_scores_: list[float] | None
        self.best_validation_score_: float | None
        self.best_loss_: float | None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _targets(self, model: MLP, Y: np.ndarray, sample_weight: Any, m: int) -> tuple[Any, Any]:
        """The binarized or numeric targets and the row weights, on the device."""
        y = model.head.encode_targets(model.backend, Y.astype(model.dtype_name), model.n_outputs, m, model.dtype)
        return y, check_sample_weight(model.backend, sample_weight, m, model.dtype)

    def _fit_lbfgs(self, model: MLP, X: Any, Y: np.ndarray, sample_weight: Any) -> None:
        """scipy's L-BFGS-B on the flat parameters (weights, then biases, then any other), as
        scikit-learn runs it: ``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``. Each
        evaluation is one transfer of the parameters to the device and one of the loss and the
        gradient back."""
        backend, xp = model.backend, model.backend.xp
        n_dense = self.n_layers_ - 1
        keys = [f"W{i}" for i in range(1, n_dense + 1)] + [f"b{i}" for i in range(1, n_dense + 1)]
        keys += [k for k in model.params if k not in keys]
        shapes = [tuple(model.params[k].shape) for k in keys]
        sizes = [math.prod(s) for s in shapes]
        decay = [k for k in keys if k in model.decay]
        alpha = float(self.alpha)
        with backend.activate(), threads.limited(backend, threads.largest_product(model.layers, X.shape[0])):
            rows = _Rows(model, X)
            y, w = self._targets(model, Y, sample_weight, rows.m)
            total = float(rows.m) if w is None else float(xp.sum(w))
            wn = None if w is None else normalized_weights(xp, w)
            ones = None if w is not None or not rows.sparse else xp.full((rows.m, 1), 1.0 / rows.m, dtype=model.dtype)
            weights = wn if wn is not None else ones

            def unflatten(flat: Any) -> dict[str, Any]:
                out, offset = {}, 0
                for key, shape, n in zip(keys, shapes, sizes, strict=True):
                    out[key] = xp.reshape(flat[offset : offset + n], shape)
                    offset += n
                return out

            def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
                model.params = unflatten(backend.asarray(theta, model.dtype, name="parameters"))
                cost: Any = 0.0
                grads: dict[str, Any] = {}
                for x, start, stop in rows.chunks(model):
                    wc = None if weights is None else weights[start:stop, ...]
                    fwd = model.forward_pass(x, training=True)
                    z, yc = fwd.logits, y[start:stop, ...]
                    cost = cost + model.head.cost(xp, z, yc, wc, model.fast)
                    chunk = model.backward_pass(fwd, model.head.delta(xp, model.fast, z, yc, wc))
                    grads = chunk if not grads else {k: grads[k] + chunk[k] for k in grads}
                for k in decay:
                    p = model.params[k]
                    cost = cost + (0.5 * alpha / total) * xp.sum(p * p)
                    grads[k] = grads[k] + (alpha / total) * p
                parts = [xp.reshape(xp.asarray(cost, dtype=model.dtype), (1,))]
                flat = to_numpy(xp.concat(parts + [xp.reshape(grads[k], (-1,)) for k in keys])).astype(np.float64)
                return float(flat[0]), flat[1:]

            theta0 = np.concatenate([to_numpy(model.params[k]).astype(np.float64).ravel() for k in keys])
            iterations = iter(range(1, self.max_iter + 1))

            def report(intermediate_result: Any) -> None:
                print(f"Iteration {next(iterations)}, loss = {intermediate_result.fun:.8f}")

            result = scipy.optimize.minimize(
                loss_grad,
                theta0,
                method="L-BFGS-B",
                jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
                callback=report if self.verbose else None,
            )
        offsets = np.cumsum([0, *sizes])
        model.set_params({k: result.x[offsets[i] : offsets[i + 1]].reshape(shapes[i]) for i, k in enumerate(keys)})
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = float(result.fun)
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}):\n"
                f"{result.message}.\n\nIncrease the number of iterations (max_iter={self.max_iter}) or of "
                f"function evaluations (max_fun={self.max_fun}), or scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _optimizer_for(self, lr: float) -> Optimizer:
        """The solver's optimizer at learning rate ``lr`` (its weight decay is set per minibatch)."""
        if self.solver == "sgd":
            nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
            return SGD(lr=lr, momentum=self.momentum, nesterov=nesterov)
        return _ScikitLearnAdam(lr=lr, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)

    def _fit_stochastic(
        self, model: MLP, X: Any, Y: np.ndarray, sample_weight: Any, incremental: bool, rs: np.random.RandomState
    ) -> None:
        """scikit-learn's minibatch loop: an epoch over the (shuffled) training rows, the loss
        recorded, the stopping rule (training loss, or validation score with ``early_stopping``)
        and the learning-rate schedule applied after it."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not hasattr(self, "loss_curve_") or (self.early_stopping and self.validation_scores_ is None):
            self._start_records()
        val = None
        if self.early_stopping:
            stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
            extra = [] if sample_weight is None else [sample_weight]
            split = train_test_split(
                X, Y, *extra, random_state=rs, test_size=self.validation_fraction, stratify=stratify
            )
            X, X_val, Y, Y_val = split[:4]
            sample_weight, w_val = (split[4], split[5]) if extra else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
                )
        n = X.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=4
                )
            batch = int(np.clip(self.batch_size, 1, n))
        if not incremental or not (self.__dict__.get("_optimizer") or self.__dict__.get("_optimizer_state")):
            self.__dict__.pop("_optimizer_state", None)
            self._optimizer = self._optimizer_for(self.learning_rate_init)
        optimizer = self._get_optimizer(model)
        backend, xp = model.backend, model.backend.xp
        gather = model.fast.get(gather_rows)
        with backend.activate(), threads.limited(backend, threads.largest_product(model.layers, batch)):
            rows = _Rows(model, X)
            y, w = self._targets(model, Y, sample_weight, n)
            if self.early_stopping:
                val = (_Rows(model, X_val), self._decode(Y_val), w_val)
            trainer = _Trainer(model, optimizer, self.alpha)
            rng = host_rng(int(rs.randint(2**31 - 1))) if model.dropout else None
            best = order = None
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                # scikit-learn shuffles last epoch's order again
                order = shuffle(np.arange(n) if order is None else order, random_state=rs) if self.shuffle else None
                order_device = None if order is None else backend.asarray(order)
                ys = y if order is None else gather(xp, y, order_device)
                ws = None if w is None else (w if order is None else gather(xp, w, order_device))
                host_w = sample_weight if order is None or sample_weight is None else sample_weight[order]
                trainer.batch_totals(n, batch, host_w)
                if rows.sparse:
                    parts = []
                    for start in range(0, n, batch):
                        index = slice(start, start + batch) if order is None else order[start : start + batch]
                        wb = None if ws is None else ws[start : start + batch]
                        parts.append(trainer.step(rows.dense(model, index), ys[start : start + batch, ...], wb, rng))
                    logits = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
                else:
                    logits = trainer.epoch(rows.x, ys, ws, batch, rng, order_device)
                self.n_iter_ += 1
                self.loss_ = self._epoch_loss(model, logits, ys, host_w, trainer.totals)
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                if self._update_no_improvement_count(model, val):
                    best = (
                        {k: xp.asarray(v, copy=True) for k, v in model.params.items()},
                        {k: xp.asarray(v, copy=True) for k, v in model.state.items()},
                    )
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    optimizer.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    if self.early_stopping:
                        msg = (
                            f"Validation score did not improve more than tol={self.tol:f} for "
                            f"{self.n_iter_no_change} consecutive epochs."
                        )
                    else:
                        msg = (
                            f"Training loss did not improve more than tol={self.tol:f} for "
                            f"{self.n_iter_no_change} consecutive epochs."
                        )
                    if self._trigger_stopping(optimizer, msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                        "hasn't converged yet.",
                        ConvergenceWarning,
                        stacklevel=4,
                    )
        self.learning_rate_ = float(optimizer.lr)
        if self.early_stopping:  # the parameters of the best-scoring epoch, as scikit-learn keeps them
            if best is not None:
                self._best_params = (
                    {k: to_numpy(v) for k, v in best[0].items()},
                    {k: to_numpy(v) for k, v in best[1].items()},
                )
            model.set_params(self._best_params[0])
            model.set_state(self._best_params[1])

    def _epoch_loss(
        self, model: MLP, logits: Any, y: Any, sample_weight: np.ndarray | None, totals: list[tuple[int, float]]
    ) -> float:
        """The epoch's loss as scikit-learn reports it, from the logits the steps computed: the
        minibatches' (weighted) mean losses plus their L2 terms ``alpha/(2 sw_b) ||W||^2``, averaged
        by rows (``totals``: each minibatch's rows and total weight ``sw_b``; ``sample_weight`` in
        the epoch's order; ``W`` as the epoch ends). One host read."""
        xp, backend = model.backend.xp, model.backend
        n = sum(rows for rows, _ in totals)
        row_losses = model.head.rows(xp, logits, y, model.fast)
        if sample_weight is None:
            terms = [xp.sum(row_losses) / n]
        else:  # row i of minibatch b counts w_i rows_b / (sw_b n)
            starts = np.cumsum([0] + [rows for rows, _ in totals[:-1]])
            factor = np.concatenate(
                [
                    sample_weight[start : start + rows] * (rows / (total * n) if total > 0 else 0.0)
                    for start, (rows, total) in zip(starts, totals, strict=True)
                ]
            )
            terms = [xp.sum(row_losses * backend.asarray(factor, model.dtype))]
        if self.alpha:
            terms.append(xp.sum(xp.stack([xp.sum(model.params[k] * model.params[k]) for k in model.decay])))
        values = to_numpy(xp.stack(terms))
        loss = float(values[0])
        if self._loss_name == "squared_error":  # scikit-learn averages the squared error over the outputs
            loss /= self.n_outputs_
        if self.alpha:
            l2 = sum(rows / total for rows, total in totals if total > 0) / n
            loss += 0.5 * float(self.alpha) * float(values[1]) * l2
        return loss

    def _update_no_improvement_count(self, model: MLP, val: tuple | None) -> bool:
        """scikit-learn's bookkeeping after an epoch; True when the epoch is the best so far by
        its validation score (``early_stopping``), whose parameters are then kept."""
        self._no_improvement_count = self.__dict__.get("_no_improvement_count", 0)
        if val is not None:
            score = self._validation_score(model, *val)
            self.validation_scores_ = [*(self.validation_scores_ or []), score]
            if self.verbose:
                print(f"Validation score: {score:f}")
            best_score = -np.inf if self.best_validation_score_ is None else self.best_validation_score_
            if score < best_score + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > best_score:
                self.best_validation_score_ = score
                return True
            return False
        best_loss = np.inf if self.best_loss_ is None else self.best_loss_
        if self.loss_curve_[-1] > best_loss - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_curve_[-1] < best_loss:
            self.best_loss_ = self.loss_curve_[-1]
        return False

    def _trigger_stopping(self, optimizer: Optimizer, msg: str) -> bool:
        """Stop, or (sgd with learning_rate='adaptive') divide the learning rate by 5 and go on."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            stop = " Stopping."
        elif optimizer.lr <= 1e-6:
            stop = " Learning rate too small. Stopping."
        else:
            optimizer.lr /= 5.0
            if self.verbose:
                print(f"{msg} Setting learning rate to {optimizer.lr:f}")
            return False
        if self.verbose:
            print(msg + stop)
        return True

    def _validation_score(self, model: MLP, rows: _Rows, y_val: np.ndarray, w_val: Any) -> float:
        """Accuracy or R^2 of the held-out rows (already on the device), NaN for a non-finite output."""
        out = to_numpy(model.head.activate(model.backend.xp, rows.logits(model), model.fast))
        if not np.isfinite(out).all():
            return np.nan
        return float(self._score_function(y_val, self._from_outputs(out), sample_weight=w_val))

    def _store_fitted(self, model: MLP) -> None:
        n_layers = len(model.layer_sizes) - 1
        self.coefs_ = [to_numpy(model.params[f"W{i}"]) for i in range(1, n_layers + 1)]
        self.intercepts_ = [to_numpy(model.params[f"b{i}"]) for i in range(1, n_layers + 1)]
        self._synced = (*self.coefs_, *self.intercepts_)
        self.params_ = {k: to_numpy(v) for k, v in model.params.items()}  # with norm: gamma{i}, beta{i} too
        self.state_ = {k: to_numpy(v) for k, v in model.state.items()}  # batch norm's running averages

    def _build_model(self, sizes: list[int]) -> MLP:
        return MLP(
            sizes,
            activation=_ACTIVATIONS[self.activation],
            output=_OUTPUTS[self.out_activation_],
            seed=0,
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
        """The trained network on this estimator's backend: rebuilt from ``params_``/``state_``
        after unpickling, and from ``coefs_``/``intercepts_`` where they were assigned (as
        scikit-learn's users may do), so that the next ``predict`` or ``partial_fit`` uses them."""
        model = self.__dict__.get("_model")
        assigned = (*self.coefs_, *self.intercepts_)
        synced = self.__dict__.get("_synced", ())
        if (
            model is not None
            and len(synced) == len(assigned)
            and all(a is b for a, b in zip(synced, assigned, strict=True))
        ):
            return model
        if "_dtype" not in self.__dict__:
            self._dtype = np.asarray(self.coefs_[0]).dtype.name
        model = self._build_model([np.shape(self.coefs_[0])[0], *(np.shape(c)[1] for c in self.coefs_)])
        params = {k: to_numpy(v) for k, v in model.params.items()}
        params.update({k: v for k, v in self.__dict__.get("params_", {}).items() if k in params})
        for i, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_, strict=True), start=1):
            params[f"W{i}"], params[f"b{i}"] = np.asarray(coef), np.reshape(intercept, -1)
        model.set_params(params)
        if "state_" in self.__dict__:
            model.set_state(self.state_)
        self._model, self._synced = model, assigned
        return model

    def _get_optimizer(self, model: MLP) -> Optimizer:
        """The optimizer, rebuilt after unpickling or copying with the state it had (NumPy in the
        pickle, moved to the model's backend), so that ``partial_fit`` continues where it was."""
        optimizer = self.__dict__.get("_optimizer")
        if optimizer is not None:
            return optimizer
        saved = self.__dict__.pop("_optimizer_state")
        optimizer = self._optimizer_for(saved["lr"])  # the rate a schedule left
        if saved["state"] is not None and saved["solver"] == self.solver:
            optimizer.init(model)
            counters = {name: saved["t"] for name in optimizer.counters}
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
        if optimizer is not None:
            state["_optimizer_state"] = {
                "solver": self.solver,
                "lr": optimizer.lr,
                "state": None
                if optimizer.state is None
                else {
                    slot: {k: to_numpy(v).copy() for k, v in arrays.items()} for slot, arrays in optimizer.state.items()
                },
                "t": getattr(optimizer, "t", None),
            }
        return state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _MLPBase:
        """Fit the model to ``X`` (dense or scipy sparse) and ``y``, as scikit-learn's MLP does:
        from scratch (or from the last fit with ``warm_start``), for up to ``max_iter`` epochs
        (L-BFGS iterations), stopping by its rules; ``sample_weight`` weighs each row's loss."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def summary(self) -> str:
        """The fitted network's layers, shapes and parameter counts
        (:meth:`anybackprop.network.Sequential.summary`)."""
        check_is_fitted(self, "coefs_")
        return f"{type(self).__name__} around:\n{self._get_model().summary()}"

    def _forward(self, X: Any) -> np.ndarray:
        """The output activations of ``X`` (dense or sparse), ``(n_samples, n_outputs_)``."""
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        model = self._get_model()
        with (
            model.backend.activate(),
            threads.limited(model.backend, threads.largest_product(model.layers, X.shape[0])),
        ):
            return to_numpy(model.head.activate(model.backend.xp, _Rows(model, X).logits(model), model.fast))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _MLPBase):
    """scikit-learn's multi-layer perceptron classifier (log loss): a sigmoid output for two
    classes and for multilabel targets (a 2-D 0/1 ``y``: one sigmoid per label), softmax for more
    classes; any labels (strings, non-contiguous ints) through ``classes_``. Parameters, attributes
    and methods are scikit-learn's (see the module docstring); ``learning_rate_`` adds the step
    size the solver ended with."""

    _score_function = staticmethod(accuracy_score)

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=(np.float64, np.float32), reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                        f"Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y).astype(bool)  # bool: stratifies as scikit-learn does

    def _decode(self, Y: np.ndarray) -> np.ndarray:
        return self._label_binarizer.inverse_transform(Y)

    def _from_outputs(self, out: np.ndarray) -> np.ndarray:
        return self._label_binarizer.inverse_transform(out.ravel() if self.n_outputs_ == 1 else out)

    @available_if(_stochastic)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over ``(X, y)``; the first call needs ``classes`` (every label, or for a
        multilabel ``y`` any value); a later one must give the same ``classes`` or none."""
        if classes is None and not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and hasattr(self, "classes_"):
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
                )
        elif classes is not None:
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted classes, ``(n_samples,)``, or ``(n_samples, n_labels)`` for multilabel."""
        return self._from_outputs(self._forward(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n_samples, n_classes)`` in the order of ``classes_`` (per label for
        multilabel, which do not sum to 1)."""
        out = self._forward(X)
        return np.hstack([1.0 - out, out]) if self.n_outputs_ == 1 else out

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLPBase):
    """scikit-learn's multi-layer perceptron regressor: squared error with an identity output,
    or ``loss="poisson"`` (half Poisson deviance, exp output, ``y >= 0``); one or several
    targets. Parameters, attributes and methods are scikit-learn's (see the module docstring)."""

    _parameter_constraints: ClassVar[dict] = {
        **_MLPBase._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }
    _score_function = staticmethod(r2_score)

    def __init__(
        self,
        loss: str = "squared_error",
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
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            norm=norm,
            backend=backend,
            dtype=dtype,
        )
        self.loss = loss

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.min(y) < 0:
            raise ValueError(f"y has a value {np.min(y)}; loss='poisson' needs targets y >= 0")
        return X, y

    def _decode(self, Y: np.ndarray) -> np.ndarray:
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _from_outputs(self, out: np.ndarray) -> np.ndarray:
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(_stochastic)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing from the current weights."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: ``(n_samples,)`` for a single target, else ``(n_samples, n_targets)``."""
        return self._from_outputs(self._forward(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
