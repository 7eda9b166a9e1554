"""The layer protocol: what a layer gives a model, and the context a pass hands it.

A layer is one class with its forward and its whole backward, written against the array API
(``ctx.xp``). A model (:class:`anybackprop.Sequential`) calls, for a batch of ``m`` rows:

``init_params(rng) -> {name: host array}``
    Initial parameters drawn on the host from the seeded ``numpy.random.Generator`` (so a seed
    gives the same model on every backend). Names are local ("W", "gamma"); the model stores the
    i-th layer's parameter called "W" under "W{i}" (``model.params["W1"]``). ``{}`` if none.
``init_state() -> {name: host array}``
    Non-parameter state saved with the model (batch norm's running averages); ``{}`` if none.
``forward(ctx, params, state, x) -> (y, cache)``
    ``x (m, n_in) -> y (m, n_out)``. ``params``/``state`` hold this layer's arrays under their
    local names. ``cache`` is whatever backward needs, explicit and inspectable (note 003): a
    NamedTuple of arrays. In training (``ctx.training``) a layer with state returns the new
    state as ``cache.state`` (a dict); the trainer commits it after the step and nothing else
    does, so ``loss_and_grads`` leaves it alone.
``backward(ctx, params, cache, dy, need_dx) -> (grads, dx)``
    From ``dy = dJ/dy`` to ``grads`` (a dict with the keys of ``params``) and ``dx = dJ/dx``
    (None when ``need_dx`` is False: the first layer). The layer applies its own activation
    derivative.
``decay``
    The local names of the parameters that take weight decay (Dense: ``("W",)``).
``fixed`` (optional, default False)
    True for a layer without parameters whose training forward is its inference forward, row by
    row, and changes no state (:class:`~anybackprop.layers.Standardize`): ``fit`` may run the
    model's leading such layers once over every row instead of once per batch.
``n_in``, ``n_out``, ``config() -> dict``, ``kind``
    Sizes; ``config()`` is JSON-able and ``LAYERS[kind](**config())`` rebuilds the layer
    (:mod:`anybackprop.io` saves models that way; ``anybackprop.register_layer`` adds your own
    kind so that its models load).

Ownership: ``x`` and ``cache`` may be read again later (by the next layer's cache, the epoch's
scores), so forward never writes into ``x``; backward owns ``dy`` and may overwrite it.

Data-parallel training: a layer that mixes rows (batch statistics) or draws random numbers does
it through the pass (``ctx.batch_mean``, ``ctx.batch_rows``, ``ctx.uniform``), so that training
split over processes equals training in one.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol, runtime_checkable

from ..backend import Backend


class Pass:
    """What one forward/backward pass hands every layer: the ``backend`` and its namespace ``xp``,
    its fast paths ``fast`` (:class:`anybackprop.fastpaths.FastPaths`), whether it is
    ``training``, and the host generator ``rng`` that training-only randomness (dropout masks)
    draws from (or, in a compiled step, a function ``(shape, dtype) -> uniform draws`` made on
    the device from a random key; see :mod:`anybackprop.compiled`).

    ``part`` is None when the pass sees its whole batch. In data-parallel training each process
    sees only rows ``part.start:part.stop`` of a global batch of ``part.rows`` rows, and
    ``part.sum(a)`` sums an array over every process. A layer whose result depends on other rows
    (batch statistics) or on random draws goes through :meth:`batch_mean`, :attr:`batch_rows`
    and :meth:`uniform`, which are exact in both cases; it never needs to know which."""

    __slots__ = ("backend", "fast", "part", "rng", "training", "xp")

    def __init__(self, backend: Backend, fast: Any, training: bool = False, rng: Any = None, part: Any = None) -> None:
        self.backend, self.xp, self.fast, self.training, self.rng, self.part = (
            backend,
            backend.xp,
            fast,
            training,
            rng,
            part,
        )

    def batch_rows(self, x: Any) -> int:
        """The number of rows of the whole batch ``x`` is (a part of)."""
        rows: int = x.shape[0] if self.part is None else self.part.rows
        return rows

    def batch_mean(self, x: Any) -> Any:
        """The mean over the rows of the whole batch, shape ``(1, n)``."""
        if self.part is None:
            return self.xp.mean(x, axis=0, keepdims=True)
        return self.part.sum(self.xp.sum(x, axis=0, keepdims=True)) / self.part.rows

    def uniform(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uniform draws in [0, 1) for the rows of ``shape`` from :attr:`rng`: a part draws those of
        the whole batch and keeps its rows, so that the draws do not depend on the split."""
        if callable(self.rng):  # a compiled step's device draws (never split over processes)
            return self.rng(tuple(shape), dtype)
        if self.part is None:
            return self.backend.uniform(self.rng, tuple(shape), dtype)
        whole = self.backend.uniform(self.rng, (self.part.rows, *shape[1:]), dtype)
        return whole[self.part.start : self.part.stop, ...]

    def __repr__(self) -> str:
        return f"Pass(backend={self.backend!r}, fast={self.fast!r}, training={self.training})"


@runtime_checkable
class Layer(Protocol):
    """The interface above; any object that has it can be a layer of a model."""

    kind: str
    n_in: int
    n_out: int
    decay: tuple[str, ...]

    def init_params(self, rng: Any) -> dict[str, Any]:
        """Host values (NumPy arrays or lists) of this layer's parameters by short name (``W``, ``b``), drawn from
        ``rng``."""

    def init_state(self) -> dict[str, Any]:
        """Host values of this layer's non-trained state (batch norm's running averages), ``{}`` if none."""

    def forward(self, ctx: Pass, params: dict[str, Any], state: dict[str, Any], x: Any) -> tuple[Any, Any]:
        """``(Y, cache)``: the output for the batch ``x`` (``(m, n_in) -> (m, n_out)``) and what :meth:`backward`
        needs."""

    def backward(
        self, ctx: Pass, params: dict[str, Any], cache: Any, dy: Any, need_dx: bool
    ) -> tuple[dict[str, Any], Any]:
        """``(grads, dX)``: the cost's gradients for ``params`` (same keys and shapes) from ``dy = dJ/dY``, and
        ``dJ/dX`` (None unless ``need_dx``)."""

    def config(self) -> dict[str, Any]:
        """The JSON-able keyword arguments that rebuild this layer, ``type(layer)(**config)`` (model
        files keep them)."""


def check_size(value: Any, name: str) -> int:
    """A layer size as a positive int (a saved file's or a user's), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_state(xp: Any, state: dict[str, Any], name: str, layer: str) -> None:
    """A ValueError unless every entry of ``state[name]`` is positive (a scale or width a saved
    file or a caller gives: zero or negative would divide by zero or flip the inputs)."""
    if not bool(xp.all(state[name] > 0)):
        raise ValueError(f"{layer} state {name!r} must be positive everywhere, got {float(xp.min(state[name]))!r}")


class LayerBase:
    """Defaults for the optional parts of the protocol: no parameters, no state, no decay, and a
    ``repr`` from ``config()``. Subclassing it is a convenience, not a requirement."""

    kind = "layer"
    decay: tuple[str, ...] = ()
    fixed = False

    def init_params(self, rng: Any) -> dict[str, Any]:
        """No parameters: ``{}`` (override it for a layer that learns some)."""
        return {}

    def init_state(self) -> dict[str, Any]:
        """No state: ``{}`` (override it for a layer that keeps some)."""
        return {}

    def config(self) -> dict[str, Any]:
        """No arguments: ``{}`` (override it when ``__init__`` takes some)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
