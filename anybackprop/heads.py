r"""Heads: everything that depends on the output kind, one object per kind.

A head turns the last layer's logits ``Z (m, k)`` into outputs and a cost. It owns the target
encoding and checks, the output activation ``A = g(Z)``, the loss from the logits, the output
delta ``dZ``, ``predict``/``predict_proba``, the metric and whether the model is a classifier.

The three paired heads (note 004, Theorem 6.1) have the output delta ``dZ = (A - Y) / m``
(``dZ_i = w_i (A_i - Y_i) / sum w`` with sample weights):

* :class:`SoftmaxCrossEntropy`: softmax + categorical cross-entropy (integer labels or one-hot),
* :class:`SigmoidBinaryCrossEntropy`: sigmoid + binary cross-entropy (0/1 labels, multi-label),
* :class:`IdentityMSE`: identity + squared error ``1/2 ||a - y||^2`` (regression);
* :class:`ExpPoisson`: exp + half Poisson deviance (counts, rates: regression with ``y >= 0``),
  ``dZ = (e^Z - Y) / m`` by the same theorem (the exp is the Poisson loss's canonical link);

.. math::

    dZ = \frac{A - Y}{m} \quad\text{or, with sample weights,}\quad dZ_i = \frac{w_i (A_i - Y_i)}{\sum_j w_j};
    \qquad \text{otherwise } dZ = g'(Z) \odot \frac{\partial J}{\partial A}

:class:`ChainRuleHead` pairs another output with a loss through ``dZ = g'(Z) * dJ/dA`` (a
sigmoid output with MSE, notes 002 and 003). :func:`get_head` builds one from names.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, cast

import array_api_compat

from . import activations as act
from . import fastpaths, losses
from .activations import Activation, get_activation
from .backend import Backend
from .losses import Loss, get_loss
from .validation import as_finite, check_finite, is_kind, to_backend

OUTPUTS = ("softmax", "sigmoid", "identity", "exp")


class Head:
    """The output kind of a model: ``output`` activation and ``loss``, paired or by chain rule.

    ``delta(xp, fast, z, y, w)`` is ``dJ/dZ`` for logits ``z``, dense targets ``y`` and
    normalised row weights ``w`` (``(m, 1)`` summing to 1, or None for the plain mean).
    """

    is_classifier = False
    metric_name = "r2"

    def __init__(self, output: Activation, loss: Loss) -> None:
        self.output, self.loss = output, loss
        self._bound: tuple[Any, tuple[Any, ...]] = (None, ())

    def _paths(self, fast: Any) -> tuple[Any, ...]:
        """(output activation, paired delta, output derivative) as ``fast`` resolves them, once."""
        bound = self._bound  # read once: a copy of the model on another backend may share this head
        if bound[0] is not fast:
            bound = self._bound = (
                fast,
                (
                    fast.get(self.output.forward),
                    fast.get(losses.paired_delta),
                    fast.get(self.output.backward, may_overwrite=True),
                ),
            )
        return bound[1]

    @property
    def paired(self) -> bool:
        """True where the loss is the output's pair, whose output delta is ``(A - Y) / m``."""
        return self.output.name == self.loss.pair

    def spec(self) -> dict[str, Any]:
        """The JSON-able names that :func:`get_head` turns back into this head."""
        return {"output": self.output.name, "loss": self.loss.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output={self.output.name!r}, loss={self.loss.name!r})"

    # --- maths ---------------------------------------------------------------------------------

    def activate(self, xp: Any, z: Any, fast: Any = None) -> Any:
        """A = g(Z), the model's output."""
        return (self.output.forward if fast is None else self._paths(fast)[0])(xp, z)

    def rows(self, xp: Any, z: Any, y: Any, fast: Any = None) -> Any:
        """Per-row losses l_i, shape (m,), from the logits."""
        a = self.activate(xp, z, fast) if self.loss.uses_activation else None
        rows = self.loss.rows
        return (fast.get(rows) if fast is not None else rows)(xp, z, a, y)

    def cost(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """J = mean of the row losses (weighted by ``w`` when given), a 0-d array."""
        return _path(fast, losses.batch_mean)(xp, self.rows(xp, z, y, fast), w)

    def delta(self, xp: Any, fast: Any, z: Any, y: Any, w: Any = None) -> Any:
        """dZ = dJ/dZ: the paired ``(A - Y) / m``, or ``g'(Z) * dJ/dA`` by the chain rule."""
        forward, paired_delta, backward = self._paths(fast)
        a = forward(xp, z)
        if self.paired:
            return paired_delta(xp, a, y) if w is None else losses.weighted_paired_delta(xp, a, y, w)
        da = cast("Callable[[Any, Any, Any], Any]", self.loss.grad_output)(xp, a, y)  # get_head checked it
        da = da / z.shape[0] if w is None else da * w
        return backward(xp, z, a, da)

    # --- targets, predictions, metric ------------------------------------------------------

    def encode_targets(self, backend: Backend, Y: Any, n_out: int, m: int, dtype: Any, name: str = "y") -> Any:
        """Targets as a dense ``(m, n_out)`` array of the model's dtype: ``(m,)`` for one output
        or ``(m, n_out)``, finite."""
        if Y is None:
            raise ValueError(f"{name} is None; this model requires targets of {m} rows")
        y = to_backend(backend, Y, name)
        _check_rows(y, m, n_out, name)
        return self._dense(backend, y, n_out, m, dtype, name)

    def _dense(self, backend: Backend, y: Any, n_out: int, m: int, dtype: Any, name: str) -> Any:
        xp = backend.xp
        if y.ndim == 1:
            if n_out != 1:
                raise ValueError(
                    f"{name} has shape {tuple(y.shape)}; the model has {n_out} outputs, expected ({m}, {n_out})"
                )
            y = xp.reshape(y, (m, 1))
        elif y.shape[1] != n_out:
            raise ValueError(
                f"{name} has {y.shape[1]} columns; the model has {n_out} outputs, expected shape ({m}, {n_out})"
            )
        return as_finite(xp, y, dtype, name)

    def predict(self, xp: Any, a: Any) -> Any:
        """Values ``(m,)`` for one output, else ``(m, k)``."""
        return a[:, 0] if a.shape[1] == 1 else a

    def predict_logits(self, xp: Any, z: Any, fast: Any = None) -> Any:
        """:meth:`predict` of the output activations of the logits ``z`` (what ``Sequential.predict`` returns)."""
        return self.predict(xp, self.activate(xp, z, fast))

    def predict_proba(self, xp: Any, a: Any) -> Any:
        """Class probabilities from the output activations ``a`` (classification heads only)."""
        raise ValueError(
            f"predict_proba needs a classifier (softmax or sigmoid output), this model has output {self.output.name!r}"
        )

    def score_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """``[cost, metric term]`` as one array, read back in one transfer (``w``: normalised row
        weights or None); a head whose two terms a backend fuses (``fast.fused``) computes them so."""
        return xp.stack([self.cost(xp, z, y, w, fast), self.metric_terms(xp, z, y, w, fast)])

    def metric_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """A 0-d array from which :meth:`metric` finishes the metric on the host: for regression
        the (weighted) residual sum of squares ``sum_i w_i ||a_i - y_i||^2``. ``fast``: the
        model's fast paths (None: the formulas)."""
        d = self.activate(xp, z) - y
        sq = xp.sum(d * d, axis=1)
        return xp.sum(sq) if w is None else xp.sum(sq * w[:, 0]) * z.shape[0]

    def metric(self, term: float, ss_tot: float) -> float:
        """R^2 = 1 - SS_res / SS_tot, both pooled over all outputs; for a constant target
        (SS_tot = 0) 1.0 for a perfect fit and 0.0 otherwise, as scikit-learn's r2_score."""
        if ss_tot > 0:
            return 1.0 - term / ss_tot
        return 1.0 if term == 0 else 0.0

    def total_sum_of_squares(self, xp: Any, y: Any, w: Any = None) -> float:
        """SS_tot of dense targets about their (weighted) mean, for :meth:`metric`; 0 for
        classifiers, which need none."""
        if w is None:
            d = y - xp.mean(y, axis=0, keepdims=True)
            return float(xp.sum(d * d))
        d = y - xp.sum(y * w, axis=0, keepdims=True)
        return float(xp.sum(xp.sum(d * d, axis=1) * w[:, 0])) * int(y.shape[0])

    def class_weights(self, xp: Any, y: Any, class_weight: Any, name: str = "class_weight") -> Any:
        """Per-row weights ``(m,)`` from ``class_weight`` ("balanced" or ``{label: weight}``) for the labels ``y``
        (classification heads only)."""
        raise ValueError(
            f"{name} needs a classifier (softmax or sigmoid output), this model has output {self.output.name!r}"
        )


class _Classifier(Head):
    is_classifier = True
    metric_name = "accuracy"

    def predict_proba(self, xp: Any, a: Any) -> Any:
        return a

    def metric(self, term: float, ss_tot: float) -> float:
        return term

    def total_sum_of_squares(self, xp: Any, y: Any, w: Any = None) -> float:
        return 0.0

    def class_weights(self, xp: Any, y: Any, class_weight: Any, name: str = "class_weight") -> Any:
        """Per-row weights ``(m,)`` from ``class_weight``: a dict ``{class index: weight}`` (classes
        not named weigh 1) or "balanced", ``n_samples / (n_classes * count)`` as scikit-learn's."""
        onehot = self._one_hot(xp, y)
        n_classes = onehot.shape[1]
        if isinstance(class_weight, str) and class_weight == "balanced":
            counts = xp.sum(onehot, axis=0)
            present = int(xp.sum(xp.astype(counts > 0, xp.int32)))
            per_class = xp.where(counts > 0, y.shape[0] / (present * xp.maximum(counts, 1.0)), 0.0)
        elif isinstance(class_weight, dict):
            values = [1.0] * n_classes
            for key, value in class_weight.items():
                if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= int(key) < n_classes:
                    raise ValueError(f"{name} has key {key!r}; expected class indices 0..{n_classes - 1}")
                key = int(key)
                if (
                    isinstance(value, bool)
                    or not isinstance(value, numbers.Real)
                    or not float(value) >= 0
                    or value == float("inf")
                ):
                    raise ValueError(f"{name}[{key!r}] must be a finite number >= 0, got {value!r}")
                values[key] = float(value)
            per_class = xp.asarray(values, dtype=y.dtype, device=array_api_compat.device(y))
        else:
            raise ValueError(f"{name} must be None, a dict {{class: weight}} or 'balanced', got {class_weight!r}")
        return xp.sum(onehot * per_class, axis=1)

    def _one_hot(self, xp: Any, y: Any) -> Any:
        return y


class SoftmaxCrossEntropy(_Classifier):
    """Softmax output, categorical cross-entropy; labels ``(m,)`` in ``[0, k)`` or one-hot rows."""

    def __init__(self, output: Activation | None = None, loss: Loss | None = None) -> None:
        super().__init__(output or act.ACTIVATIONS["softmax"], loss or losses.LOSSES["cross_entropy"])

    def _dense(self, backend: Backend, y: Any, n_out: int, m: int, dtype: Any, name: str) -> Any:
        xp = backend.xp
        if y.ndim == 1:
            return _one_hot_labels(backend, y, n_out, dtype, name)
        y = super()._dense(backend, y, n_out, m, dtype, name)
        _check_unit_interval(xp, y, name, "softmax")
        error = float(xp.max(xp.abs(xp.sum(y, axis=1) - 1.0)))
        if error > 1e-3:
            raise ValueError(
                f"{name} rows must be one-hot or probabilities summing to 1; a row sums to 1 {error:+.3g} off"
            )
        return y

    def predict(self, xp: Any, a: Any) -> Any:
        return act.row_argmax(xp, a)

    def predict_logits(self, xp: Any, z: Any, fast: Any = None) -> Any:
        """The class of the largest logit: softmax is increasing in each logit, so it is the class
        of the largest probability, as the accuracy counts it (no exponentials for a prediction)."""
        return _path(fast, act.row_argmax)(xp, z)

    def score_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """The loss and the accuracy in one fused call where the fast paths have one (NumPy's: no
        ``stack``, fewer calls), else as :class:`Head`'s."""
        fused = None if fast is None else fast.fused(self.loss.rows, act.row_argmax)
        return super().score_terms(xp, z, y, w, fast) if fused is None else fused(xp, z, y, w)

    def metric_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """(Weighted) accuracy: argmax of the logits against argmax of the targets."""
        argmax = _path(fast, act.row_argmax)
        hit = xp.astype(argmax(xp, z) == argmax(xp, y), z.dtype)
        return _path(fast, losses.batch_mean)(xp, hit, w)


class SigmoidBinaryCrossEntropy(_Classifier):
    """Sigmoid output(s), binary cross-entropy; targets in [0, 1], ``(m,)`` for one output."""

    def __init__(self, output: Activation | None = None, loss: Loss | None = None) -> None:
        super().__init__(output or act.ACTIVATIONS["sigmoid"], loss or losses.LOSSES["binary_cross_entropy"])

    def _dense(self, backend: Backend, y: Any, n_out: int, m: int, dtype: Any, name: str) -> Any:
        y = super()._dense(backend, y, n_out, m, dtype, name)
        _check_unit_interval(backend.xp, y, name, "sigmoid")
        return y

    def predict(self, xp: Any, a: Any) -> Any:
        out = xp.astype(a >= 0.5, xp.int64)
        return out[:, 0] if a.shape[1] == 1 else out

    def predict_proba(self, xp: Any, a: Any) -> Any:
        """One output: columns ``[P(0), P(1)]``; several: one probability per output."""
        return xp.concat([1.0 - a, a], axis=1) if a.shape[1] == 1 else a

    def metric_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        """(Weighted) accuracy of ``z >= 0`` against ``y >= 0.5``, over every output."""
        hit = xp.astype((z >= 0) == (y >= 0.5), z.dtype)
        return xp.mean(hit) if w is None else xp.sum(xp.mean(hit, axis=1) * w[:, 0])

    def _one_hot(self, xp: Any, y: Any) -> Any:
        if y.shape[1] != 1:
            raise ValueError("class_weight needs a single sigmoid output (binary classification)")
        return xp.concat([1.0 - y, y], axis=1)


class IdentityMSE(Head):
    """Identity output, mean squared error ``1/(2m) sum ||a - y||^2`` (regression)."""

    def __init__(self, output: Activation | None = None, loss: Loss | None = None) -> None:
        super().__init__(output or act.ACTIVATIONS["identity"], loss or losses.LOSSES["mse"])


class ExpPoisson(Head):
    """Exp output ``A = e^Z``, half Poisson deviance (Poisson regression); targets ``y >= 0``."""

    def __init__(self, output: Activation | None = None, loss: Loss | None = None) -> None:
        super().__init__(output or act.ACTIVATIONS["exp"], loss or losses.LOSSES["poisson"])

    def _dense(self, backend: Backend, y: Any, n_out: int, m: int, dtype: Any, name: str) -> Any:
        y = super()._dense(backend, y, n_out, m, dtype, name)
        low = float(backend.xp.min(y))
        if low < 0:
            raise ValueError(f"{name} has a value {low}; the Poisson loss (exp output) expects targets >= 0")
        return y


class ChainRuleHead(Head):
    """Any output with a loss that is not its pair (sigmoid or softmax with MSE): the output delta
    is ``g'(Z) * dJ/dA`` (notes 002 and 003); targets, predictions and metric follow the
    output's paired head."""

    def __init__(self, output: Activation, loss: Loss) -> None:
        super().__init__(output, loss)
        self._like = _PAIRED[output.name]()
        self.is_classifier = self._like.is_classifier
        self.metric_name = self._like.metric_name

    def _dense(self, backend: Backend, y: Any, n_out: int, m: int, dtype: Any, name: str) -> Any:
        return self._like._dense(backend, y, n_out, m, dtype, name)

    def predict(self, xp: Any, a: Any) -> Any:
        return self._like.predict(xp, a)

    def predict_logits(self, xp: Any, z: Any, fast: Any = None) -> Any:
        return self._like.predict_logits(xp, z, fast)

    def predict_proba(self, xp: Any, a: Any) -> Any:
        """Class probabilities, as the output's paired head gives them."""
        return self._like.predict_proba(xp, a)

    def metric_terms(self, xp: Any, z: Any, y: Any, w: Any = None, fast: Any = None) -> Any:
        return self._like.metric_terms(xp, z, y, w, fast)

    def metric(self, term: float, ss_tot: float) -> float:
        return self._like.metric(term, ss_tot)

    def total_sum_of_squares(self, xp: Any, y: Any, w: Any = None) -> float:
        return self._like.total_sum_of_squares(xp, y, w)

    def class_weights(self, xp: Any, y: Any, class_weight: Any, name: str = "class_weight") -> Any:
        """Per-row weights from ``class_weight``, as the output's paired head gives them."""
        return self._like.class_weights(xp, y, class_weight, name)


_PAIRED: dict[str, Callable[[], Head]] = {
    "softmax": SoftmaxCrossEntropy,
    "sigmoid": SigmoidBinaryCrossEntropy,
    "identity": IdentityMSE,
    "exp": ExpPoisson,
}
HEADS = ("softmax", "sigmoid", "identity")  # the output kinds the command line offers; MLP also takes "exp"
DEFAULT_LOSS = {name: cls().loss.name for name, cls in _PAIRED.items()}


def _path(fast: Any, formula: Callable[..., Any]) -> Callable[..., Any]:
    """``formula`` as the fast paths ``fast`` resolve it (None: the formula itself)."""
    return formula if fast is None else fast.get(formula)


def get_head(output: Any = "softmax", loss: str | None = None) -> Head:
    """A head from an output name ("softmax", "sigmoid", "identity", or its Activation) and a loss
    name (default: the output's pair; any loss with a ``grad_output``, "mse", works with any
    output through the chain rule), or a :class:`Head` itself."""
    if isinstance(output, Head):
        if loss is not None and loss != output.loss.name:
            raise ValueError(f"loss {loss!r} conflicts with the head {output!r}; pass one or the other")
        return output
    activation = get_activation(output, OUTPUTS)
    loss_obj = get_loss(DEFAULT_LOSS[activation.name] if loss is None else loss)
    if loss_obj.pair == activation.name:
        return _PAIRED[activation.name]()
    if loss_obj.grad_output is None:
        raise ValueError(f"loss {loss_obj.name!r} needs output {loss_obj.pair!r}, got output {activation.name!r}")
    return ChainRuleHead(activation, loss_obj)


def _check_rows(y: Any, m: int, n_out: int, name: str) -> None:
    if y.ndim not in (1, 2) or y.shape[0] != m:
        raise ValueError(
            f"{name} has shape {tuple(y.shape)} but X has {m} rows; expected one target per row, "
            f"of shape ({m},) or ({m}, {n_out})"
        )


def _check_unit_interval(xp: Any, y: Any, name: str, output: str) -> None:
    low, high = float(xp.min(y)), float(xp.max(y))
    if low < 0 or high > 1:
        raise ValueError(f"{name} has values in [{low}, {high}]; a {output} output expects targets in [0, 1]")


def _label(value: float) -> str:
    """A label as a message shows it: ``3``, not ``3.0``; ``1e+300`` in full."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else f"{value:g}"


def _one_hot_labels(backend: Backend, y: Any, n_classes: int, dtype: Any, name: str) -> Any:
    """One-hot rows from integer class labels, after checking every label is in range.

    The range is checked explicitly: CuPy wraps out-of-range indices around instead of raising.
    """
    xp = backend.xp
    if not is_kind(xp, y.dtype, "integral"):  # integer labels, the common case, take one dtype test
        if not is_kind(xp, y.dtype, "real floating"):
            raise ValueError(f"{name} has dtype {y.dtype}; a softmax output expects integer class labels")
        check_finite(xp, y, name)
        if not bool(xp.all(y == xp.round(y))):
            raise ValueError(f"{name} holds non-integer values; a softmax output expects integer class labels")
    fast = fastpaths.for_backend(backend)
    low, high = fast.get(losses.label_range)(xp, y)
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{name} has labels in [{_label(low)}, {_label(high)}]; the softmax output has {n_classes} classes, "
            f"expected integers in [0, {n_classes - 1}]"
        )
    return fast.get(losses.one_hot)(xp, y, n_classes, dtype, backend.device)
