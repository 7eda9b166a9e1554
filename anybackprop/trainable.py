"""What the training loop uses of a model: the :class:`Trainable` protocol that :func:`anybackprop.training.fit`,
its :class:`~anybackprop.training.Trainer` and the callbacks are written against."""

from __future__ import annotations

from typing import Any, Protocol


class Trainable(Protocol):
    """What :func:`fit` and :class:`Trainer` use of a model (:class:`anybackprop.Sequential` has it):

    * ``backend``, ``dtype_name``, ``fast`` (its fast paths), ``head``, ``layers``, ``params``, ``state``, ``decay``;
    * ``check_data(X, Y, sample_weight, class_weight) -> (x, y, w)``: checked arrays on the device;
    * ``forward_pass(x, training=, rng=, part=, start=) -> ForwardPass``: logits, caches and the pass context;
    * ``fixed_prefix`` and ``prefix(x)``: the leading layers ``fit`` runs once over every row (0 and none);
    * ``backward_pass(fwd, dz) -> grads`` (keys of ``params``); ``commit_state(fwd)``;
    * ``learn_preprocessing(x)``: state learned from the training rows (standardisation);
    * ``scores(z, y, w, ss_tot) -> (loss, metric)`` in one host read; ``total_sum_of_squares(y, w)``;
    * ``copy()``, ``set_params(params)``, ``set_state(state)``: early stopping's kept best model.
    """

    backend: Any
    fast: Any
    head: Any
    layers: list
    params: dict
    state: dict
    fixed_prefix: int

    @property
    def dtype_name(self) -> str:
        """The parameters' dtype, ``"float32"`` or ``"float64"``."""
        ...

    def check_data(
        self, X: Any, Y: Any, sample_weight: Any = None, class_weight: Any = None, names: tuple = ...
    ) -> tuple:
        """``(x, y, w)``: checked arrays on the model's device (labels encoded, weights from
        ``sample_weight``/``class_weight``)."""

    def forward_pass(
        self,
        x: Any,
        *,
        training: bool = False,
        rng: Any = None,
        params: dict | None = None,
        part: Any = None,
        start: int = 0,
    ) -> Any:
        """The logits of the batch ``x``, with the caches and the pass context the backward pass needs."""

    def prefix(self, x: Any) -> Any:
        """The output of the first ``fixed_prefix`` layers on the rows ``x`` (no parameters, the
        same map in training and inference)."""

    def backward_pass(self, fwd: Any, dz: Any) -> dict:
        """The gradients (keys of ``params``) from the forward pass ``fwd`` and the output delta ``dz``."""

    def commit_state(self, fwd: Any) -> None:
        """Store the state a training pass computed (batch norm's running averages)."""

    def learn_preprocessing(self, x: Any, only_initial: bool = False) -> None:
        """Learn state from the training rows ``x`` (a standardisation), only while it is initial if asked."""

    def scores(self, z: Any, y: Any, w: Any = None, ss_tot: float = 0.0) -> tuple[float, float]:
        """``(loss, metric)`` of the logits ``z`` against ``y``, read from the device once."""

    def total_sum_of_squares(self, y: Any, w: Any = None) -> float:
        """The (weighted) total sum of squares of ``y``, the denominator of R^2."""

    def copy(self) -> Trainable:
        """An independent model with the same layers, parameters and state."""

    def set_params(self, params: dict) -> None:
        """Replace the parameters (same keys and shapes) with ``params``."""

    def set_state(self, state: dict) -> None:
        """Replace the state (same keys and shapes) with ``state``."""
