"""Models: a sequence of layers and a head. :class:`Sequential` takes any layers that follow the
protocol of :mod:`anybackprop.layers.base`; :class:`MLP` is the short way to build the common case.

Forward keeps each layer's cache (note 003); backward is note 004's recursion, each layer doing
its own part: from the head's output delta ``dZ_L`` (``(A - Y)/m`` for the paired output/loss),
for l = L..1 the layer turns ``dY_l`` into its parameter gradients and ``dY_{l-1}``.

The trainer (:mod:`anybackprop.training`) drives a model through four documented methods:
:meth:`Sequential.check_data`, :meth:`~Sequential.forward_pass`, :meth:`~Sequential.backward_pass`
and :meth:`~Sequential.commit_state`, plus :meth:`~Sequential.scores` for epoch figures.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass
from typing import Any

from . import _launch, fastpaths, threads, training
from .activations import Activation, get_activation
from .backend import Backend, backend_for, host_rng, to_numpy
from .heads import Head, get_head
from .layers import (
    NORMS,
    SCALERS,
    ActivationLayer,
    Dense,
    Dropout,
    Layer,
    Pass,
    PiecewiseLinear,
    ScaledDense,
    TargetScale,
)
from .layers.dropout import check_rate
from .layers.scaled_dense import check_gain
from .losses import normalized_weights
from .summary import model_summary
from .validation import check_finite, check_sample_weight, check_X

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
_NO_STATE: dict = {}


@dataclass(slots=True)
class ForwardPass:
    """One forward pass: the last layer's output ``logits`` (what the head reads), each layer's
    cache in order, and the :class:`~anybackprop.layers.Pass` it ran in (backward reuses it)."""

    logits: Any
    caches: list
    ctx: Pass


class Sequential:
    """``layers`` in order (each ``n_out`` feeding the next ``n_in``) and a ``head``: a
    :class:`~anybackprop.heads.Head` or an output name ("softmax", "sigmoid", "identity") with
    ``loss`` (default: the output's pair). The last layer's output are the logits.

    Parameters are drawn on the host from ``numpy.random.default_rng(seed)``, layer by layer, and
    kept in one flat dict ``params``: the i-th layer holding a parameter called "W" stores it as
    "W{i}" (so an MLP has W1, b1, W2, ...; a normalisation after hidden layer i has gamma{i},
    beta{i}). Non-parameter state (running averages) lives in ``state`` under the same rule.
    """

    def __init__(
        self,
        layers: list,
        head: str | Head = "softmax",
        loss: str | None = None,
        *,
        seed: int | None = 0,
        dtype: Any = None,
        backend: str | Backend | None = None,
    ) -> None:
        layers = _check_layers(layers)
        self.head = get_head(head, loss)
        if self.head.output.name == "softmax" and layers[-1].n_out < 2:
            raise ValueError(
                f"a softmax output needs at least 2 units (it gives probability 1 to a single one), got "
                f"{layers[-1].n_out}; use output='sigmoid' for two classes"
            )
        self.backend = backend_for(backend)
        self.dtype = self.backend.float_dtype(dtype)
        self.seed = seed
        self.layers = layers
        self.fast = fastpaths.for_backend(self.backend)
        rng = host_rng(seed)
        param_count: dict[str, int] = {}
        state_count: dict[str, int] = {}
        self.params: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        # per layer: the layer and its (local, global) parameter and state names, for the passes
        self._plan: list[tuple[Any, tuple, tuple]] = []
        for layer in layers:
            p_keys = self._place(layer.init_params(rng), param_count, self.params)
            s_keys = self._place(layer.init_state(), state_count, self.state)
            self._plan.append((layer, tuple(p_keys.items()), tuple(s_keys.items())))
        self.decay = {dict(p_keys)[local] for layer, p_keys, _ in self._plan for local in layer.decay}
        # the backward pass ends at the first layer with parameters: no gradient is wanted below it
        # (a leading scaling layer's, or the input's)
        self._first_learned = next((i for i, (_, p_keys, _) in enumerate(self._plan) if p_keys), len(self._plan))
        # the leading layers fit may run once over every row (no parameters, the same map in training)
        self.fixed_prefix = next(
            (i for i, (layer, p_keys, _) in enumerate(self._plan) if p_keys or not getattr(layer, "fixed", False)),
            len(self._plan),
        )
        self._product_per_row = threads.largest_product(layers, 1)  # the thread policy's measure, per row

    def _place(self, arrays: dict, count: dict[str, int], into: dict[str, Any]) -> dict[str, str]:
        keys = {}
        for local, value in arrays.items():
            count[local] = count.get(local, 0) + 1
            key = keys[local] = f"{local}{count[local]}"
            into[key] = self.backend.asarray(value, self.dtype, name=key)
        return keys

    # --- description ---------------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        """The number of input features (the first layer's ``n_in``)."""
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        """The number of outputs (the last layer's ``n_out``)."""
        return self.layers[-1].n_out

    @property
    def dtype_name(self) -> str:
        """The parameters' dtype as a name, ``"float32"`` or ``"float64"``."""
        return "float64" if self.dtype == self.backend.xp.float64 else "float32"

    @property
    def is_classifier(self) -> bool:
        """True when the head classifies (softmax or sigmoid output)."""
        return self.head.is_classifier

    @property
    def output(self) -> Activation:
        """The output activation (the head's)."""
        return self.head.output

    @property
    def loss_fn(self) -> Any:
        """The loss (the head's)."""
        return self.head.loss

    def layer_specs(self) -> list[dict]:
        """Each layer as ``{"kind": ..., "config": {...}}`` (JSON-able)."""
        return [{"kind": layer.kind, "config": layer.config()} for layer in self.layers]

    def config(self) -> dict:
        """Everything but the arrays needed to rebuild this model (JSON-able)."""
        return {"layers": self.layer_specs(), "head": self.head.spec(), "dtype": self.dtype_name}

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return (
            f"Sequential([\n    {inner},\n], head={self.head!r}, dtype={self.dtype_name!r}, "
            f"backend={self.backend.name!r})"
        )

    def _empty_like(self, dtype: Any, backend: Backend) -> Sequential:
        """A model of the same class, layers and head with fresh arrays in ``dtype`` on ``backend``."""
        clone = copy.copy(self)
        Sequential.__init__(clone, self.layers, self.head, seed=self.seed, dtype=dtype, backend=backend)
        return clone

    def copy(self, *, dtype: Any = None, backend: str | Backend | None = None) -> Sequential:
        """The same layers, parameter values and state, optionally in another dtype or backend
        (None keeps this model's)."""
        target = self.backend if backend is None else backend_for(backend)
        clone = self._empty_like(self.dtype_name if dtype is None else dtype, target)
        move = (lambda v: v) if target is self.backend else to_numpy
        clone.set_params({k: move(v) for k, v in self.params.items()})
        clone.set_state({k: move(v) for k, v in self.state.items()})
        return clone

    def set_params(self, params: dict) -> None:
        """Replace every parameter with a copy of ``params`` (arrays of this backend or NumPy),
        checking names, shapes and values."""
        self.params = self._replaced(self.params, params, "params")

    def set_state(self, state: dict) -> None:
        """Replace the non-parameter state (running averages) as :meth:`set_params` does; a layer
        with a ``check_state(xp, state)`` method checks its part first (a positive scale)."""
        new = self._replaced(self.state, state, "state")
        with self.backend.activate():  # the checks run on the model's device
            for layer, _, s_keys in self._plan:
                if s_keys and hasattr(layer, "check_state"):
                    layer.check_state(self.backend.xp, {k: new[g] for k, g in s_keys})
        self.state = new

    def _replaced(self, current: dict, new: dict, what: str) -> dict:
        if not isinstance(new, dict) or set(new) != set(current):
            got = sorted(new) if isinstance(new, dict) else type(new).__name__
            raise ValueError(f"{what} must have the keys {sorted(current)}, got {got}")
        out = {}
        xp = self.backend.xp
        with self.backend.activate():  # the checks and copies run on the model's device
            for key, value in new.items():
                arr = self.backend.asarray(value, self.dtype, name=f"{what}[{key!r}]")
                if tuple(arr.shape) != tuple(current[key].shape):
                    raise ValueError(
                        f"{what}[{key!r}] has shape {tuple(arr.shape)}, expected {tuple(current[key].shape)}"
                    )
                check_finite(xp, arr, f"{what}[{key!r}]")
                out[key] = xp.asarray(arr, copy=True)  # training updates in place: never alias the caller's
        return out

    # --- the trainer's interface -----------------------------------------------------------

    def check_data(
        self, X: Any, Y: Any, sample_weight: Any = None, class_weight: Any = None, names: tuple = ("X", "y")
    ) -> tuple[Any, Any, Any]:
        """``(x, y, w)`` on the backend in the model's dtype: ``x (m, n_features)``, dense targets
        ``y (m, n_outputs)`` (the head encodes them) and row weights ``w (m,)``, the product of
        ``sample_weight`` and ``class_weight`` (None when both are None)."""
        x = check_X(self.backend, X, self.n_features, self.dtype, names[0])
        y = self.head.encode_targets(self.backend, Y, self.n_outputs, x.shape[0], self.dtype, names[1])
        w = check_sample_weight(self.backend, sample_weight, x.shape[0], self.dtype)
        if class_weight is not None:
            cw = self.head.class_weights(self.backend.xp, y, class_weight)
            w = cw if w is None else w * cw
            if not float(self.backend.xp.sum(w)) > 0:
                raise ValueError("class_weight and sample_weight leave every row with weight 0")
        return x, y, w

    def forward_pass(
        self,
        x: Any,
        *,
        training: bool = False,
        rng: Any = None,
        params: dict | None = None,
        part: Any = None,
        state: dict | None = None,
        start: int = 0,
    ) -> ForwardPass:
        """Run every layer on a checked batch ``x``; ``training`` switches dropout on and batch
        norm to batch statistics (its new running averages wait in the caches for
        :meth:`commit_state`); ``params`` and ``state`` replace the model's (gradient checks, a
        pure training step); ``part``: ``x`` is this process's part of a global batch
        (data-parallel training, see :class:`~anybackprop.layers.Pass`); ``start``: ``x`` is
        already the output of the first ``start`` layers (at most :attr:`fixed_prefix`, see
        :meth:`prefix`), which have no cache."""
        params = self.params if params is None else params
        state = self.state if state is None else state
        ctx = Pass(self.backend, self.fast, training, rng, part)
        caches: list = [None] * start
        for layer, p_keys, s_keys in self._plan[start:] if start else self._plan:
            layer_state = {k: state[g] for k, g in s_keys} if s_keys else _NO_STATE
            x, cache = layer.forward(ctx, {k: params[g] for k, g in p_keys}, layer_state, x)
            caches.append(cache)
        return ForwardPass(x, caches, ctx)

    def prefix(self, x: Any) -> Any:
        """The output of the first :attr:`fixed_prefix` layers (no parameters, the same map in
        training and inference: a leading scaling) on the checked rows ``x``, which ``fit`` computes
        once and then starts every pass after (``forward_pass(..., start=fixed_prefix)``)."""
        ctx = Pass(self.backend, self.fast)
        for layer, _, s_keys in self._plan[: self.fixed_prefix]:
            x, _ = layer.forward(ctx, {}, {k: self.state[g] for k, g in s_keys}, x)
        return x

    def learn_preprocessing(self, x: Any, only_initial: bool = False) -> None:
        """Set the state of every layer that learns it from data (those with a
        ``learn_state(xp, x)`` method: :class:`~anybackprop.layers.Standardize`) from the checked
        rows that reach it, running the layers before it in inference mode (``fit`` calls this);
        ``only_initial``: only layers whose state is still their ``init_state()``."""
        learners = [i for i, layer in enumerate(self.layers) if hasattr(layer, "learn_state")]
        if only_initial:
            learners = [i for i in learners if self._initial_state(i)]
        if not learners:
            return
        ctx = Pass(self.backend, self.fast)
        for i, (layer, p_keys, s_keys) in enumerate(self._plan[: max(learners, default=-1) + 1]):
            if i in learners:
                names = dict(s_keys)
                self.state.update({names[k]: value for k, value in layer.learn_state(ctx.xp, x).items()})
            x, _ = layer.forward(ctx, {k: self.params[g] for k, g in p_keys}, {k: self.state[g] for k, g in s_keys}, x)

    def set_layer_state(self, i: int, values: dict) -> None:
        """Replace the state of layer ``i`` (``values`` under its local names, as its
        ``init_state()`` has them), checked as :meth:`set_state` checks."""
        names = dict(self._plan[i][2])
        self.set_state({**self.state, **{names[k]: v for k, v in values.items()}})

    def _initial_state(self, i: int) -> bool:
        """Whether layer ``i``'s state is still its ``init_state()`` (one host read)."""
        xp = self.backend.xp
        initial = self.layers[i].init_state()
        return all(
            bool(xp.all(self.state[g] == self.backend.asarray(initial[k], self.dtype))) for k, g in self._plan[i][2]
        )

    def summary(self) -> str:
        """One line per layer (kind and settings, output shape, parameter and state counts), the
        totals and the head; see :mod:`anybackprop.summary`."""
        return model_summary(self)

    def layer_arrays(self) -> list[tuple[Any, dict, dict]]:
        """Each layer with its parameters and its state under their local names
        (``(dense, {"W": W1, "b": b1}, {})``): what an exporter reads."""
        return [
            (layer, {k: self.params[g] for k, g in p_keys}, {k: self.state[g] for k, g in s_keys})
            for layer, p_keys, s_keys in self._plan
        ]

    def backward_pass(self, fwd: ForwardPass, dz: Any, params: dict | None = None) -> dict[str, Any]:
        """Gradients with the keys and shapes of ``params`` (default: the model's, as the
        forward pass used them), from the head's delta ``dz``, layer by layer down to the first
        layer with parameters (none below it is asked for ``dA_prev``)."""
        grads: dict[str, Any] = {}
        params, caches, ctx = self.params if params is None else params, fwd.caches, fwd.ctx
        first = self._first_learned
        for i in range(len(self._plan) - 1, first - 1, -1):
            layer, p_keys, _ = self._plan[i]
            local, dz = layer.backward(ctx, {k: params[g] for k, g in p_keys}, caches[i], dz, i > first)
            for k, g in p_keys:
                grads[g] = local[k]
        return grads

    def commit_state(self, fwd: ForwardPass) -> None:
        """Keep the new state (running averages) a training pass computed."""
        if self.state:
            self.state.update(self.stepped_state(fwd))

    def stepped_state(self, fwd: ForwardPass) -> dict[str, Any]:
        """The state entries a training pass changed (running averages), by global name."""
        changed = {}
        for cache, (_, _, s_keys) in zip(fwd.caches, self._plan, strict=True):
            new = getattr(cache, "state", None)
            if new:
                changed.update({g: new[k] for k, g in s_keys})
        return changed

    def scores(self, z: Any, y: Any, w: Any = None, ss_tot: float = 0.0) -> tuple[float, float]:
        """Mean loss and metric of logits ``z`` against dense targets ``y`` (weighted by ``w``,
        raw or None), read back in one transfer: accuracy, or R^2 against ``ss_tot``."""
        loss, term = self.backend.adapter.to_numpy(self.score_terms(z, y, w)).tolist()  # Python floats
        return loss, self.head.metric(term, ss_tot)

    def score_terms(self, z: Any, y: Any, w: Any = None) -> Any:
        """The device part of :meth:`scores`: ``[loss, metric term]`` as one array."""
        xp = self.backend.xp
        wn = None if w is None else normalized_weights(xp, w)
        return self.head.score_terms(xp, z, y, wn, self.fast)

    def total_sum_of_squares(self, y: Any, w: Any = None) -> float:
        """SS_tot of dense targets, for the R^2 of :meth:`scores` (0 for classifiers)."""
        xp = self.backend.xp
        return self.head.total_sum_of_squares(xp, y, None if w is None else normalized_weights(xp, w))

    # --- public API --------------------------------------------------------------------------

    def _threads(self, rows: int) -> Any:
        """The BLAS thread policy for a pass over ``rows`` rows (see :mod:`anybackprop.threads`)."""
        return threads.limited(self.backend, rows * self._product_per_row)

    def forward(self, X: Any) -> Any:
        """Output activations ``A_L`` of shape ``(m, n_outputs)``, in inference mode."""
        with self.backend.activate():
            return self.head.activate(self.backend.xp, self._logits(X), self.fast)

    def _logits(self, X: Any) -> Any:
        """The inference-mode logits of the input ``X``, checked (inside ``activate()``)."""
        x = check_X(self.backend, X, self.n_features, self.dtype)
        with self._threads(x.shape[0]):
            return self.forward_pass(x).logits

    def _cost(
        self, X: Any, Y: Any, sample_weight: Any, training: bool, seed: int | None, grads: bool
    ) -> tuple[float, Any]:
        xp = self.backend.xp
        with self.backend.activate():
            x, y, w = self.check_data(X, Y, sample_weight)
            wn = None if w is None else normalized_weights(xp, w)
            with self._threads(x.shape[0]):
                fwd = self.forward_pass(x, training=training, rng=host_rng(seed))
                loss = float(self.head.cost(xp, fwd.logits, y, wn, self.fast))
                if not grads:
                    return loss, None
                return loss, self.backward_pass(fwd, self.head.delta(xp, self.fast, fwd.logits, y, wn))

    def loss(self, X: Any, Y: Any, sample_weight: Any = None, *, training: bool = False, seed: int | None = 0) -> float:
        """The batch-mean loss of ``(X, Y)`` (weighted by ``sample_weight``) as a Python float; in
        inference mode unless ``training=True`` (dropout masks from ``seed``, batch statistics)."""
        return self._cost(X, Y, sample_weight, training, seed, grads=False)[0]

    def loss_and_grads(
        self, X: Any, Y: Any, sample_weight: Any = None, *, seed: int | None = 0
    ) -> tuple[float, dict[str, Any]]:
        """``(loss, grads)`` of the training-mode loss (batch statistics, dropout masks drawn
        from ``seed``; running averages untouched); ``grads`` has the keys of ``params``."""
        return self._cost(X, Y, sample_weight, True, seed, grads=True)

    def fit(self, X: Any, Y: Any, **kwargs: Any) -> Any:
        """Train on ``(X, Y)``; see :func:`anybackprop.training.fit` for the arguments."""
        return training.fit(self, X, Y, **kwargs)

    def predict(self, X: Any) -> Any:
        """Class labels (softmax: ``argmax``; sigmoid: ``a >= 0.5``) or values (identity);
        shape ``(m,)`` for one output (and for softmax), else ``(m, n_outputs)``."""
        with self.backend.activate():
            return self.head.predict_logits(self.backend.xp, self._logits(X), self.fast)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities: softmax rows ``(m, C)``; one sigmoid output gives ``(m, 2)``
        columns ``[P(0), P(1)]``, several give ``(m, k)``."""
        if not self.is_classifier:
            return self.head.predict_proba(self.backend.xp, None)
        with self.backend.activate():
            return self.head.predict_proba(self.backend.xp, self.forward(X))

    def score(self, X: Any, Y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classification) or R^2 = 1 - SS_res / SS_tot with both sums pooled over
        all outputs (regression), weighted by ``sample_weight`` if given."""
        with self.backend.activate():
            x, y, w = self.check_data(X, Y, sample_weight)
            with self._threads(x.shape[0]):
                return self.scores(self.forward_pass(x).logits, y, w, self.total_sum_of_squares(y, w))[1]


def _check_layers(layers: Any) -> list:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers must be a non-empty list of layer objects, got {layers!r}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            missing = [
                n
                for n in (
                    "kind",
                    "n_in",
                    "n_out",
                    "decay",
                    "init_params",
                    "init_state",
                    "forward",
                    "backward",
                    "config",
                )
                if not hasattr(layer, n)
            ]
            raise TypeError(
                f"layers[{i}] ({type(layer).__name__}) is not a layer: it lacks {', '.join(missing)} (see "
                "anybackprop.layers.base)"
            )
    for i in range(1, len(layers)):
        if layers[i].n_in != layers[i - 1].n_out:
            raise ValueError(
                f"layers[{i}] takes {layers[i].n_in} inputs but layers[{i - 1}] gives {layers[i - 1].n_out}"
            )
    count = sum(layer.n_in * layer.n_out + layer.n_out for layer in layers if isinstance(layer, Dense))
    memory = _launch.memory()
    if memory and count * 8 > memory:  # before any allocation: the initial weights are drawn in float64
        sizes = [layers[0].n_in, *(layer.n_out for layer in layers)]
        raise ValueError(
            f"layer sizes {sizes} make {count:,} parameters, whose initial weights alone need "
            f"{count * 8 / 2**30:,.0f} GiB, more than this machine's {memory / 2**30:,.0f} GiB; choose smaller layers"
        )
    return list(layers)


class MLP(Sequential):
    """A fully-connected network ``layer_sizes[0] -> ... -> layer_sizes[-1]``.

    ``activation`` is one name for every hidden layer or a list with one per hidden layer
    ("identity", "sigmoid", "tanh", "relu", "leaky_relu" or ``{"name": "leaky_relu", "slope": s}``);
    ``output`` is "softmax", "sigmoid", "identity" or "exp" (Poisson regression); ``loss`` defaults
    to the output's pair ("cross_entropy", "binary_cross_entropy", "mse", "poisson"), and "mse" is
    allowed with any output.
    ``dropout`` (a probability, or one per hidden layer) adds inverted dropout after each hidden
    activation; ``norm`` ("batch" or "layer") normalises each hidden layer's pre-activation.
    ``standardize=True`` (or "standard") puts a :class:`~anybackprop.layers.Standardize` layer first,
    whose mean and scale ``fit`` learns from the training rows and saves as state, so the model
    takes raw inputs; "robust" puts a :class:`~anybackprop.layers.RobustScale` (median, quartile
    spread, smooth clipping) there instead. ``target_scale=True`` (identity output only) ends the
    network with a :class:`~anybackprop.layers.TargetScale` layer whose state maps standardised
    outputs to the target's units (:class:`~anybackprop.tables.TabularModel` sets it). ``bins=T``
    encodes each input, after the scaling, in ``T`` quantile bins
    (:class:`~anybackprop.layers.PiecewiseLinear`, learned by ``fit``), so the first dense layer
    takes ``layer_sizes[0] * T`` inputs; ``bin_features`` (``k`` increasing input indices) encodes
    those inputs only and passes the others through (a table's numeric columns, not its one-hot
    ones), so that it takes ``k * T + layer_sizes[0] - k``.
    ``feature_scale=g`` learns a scale per input of the first dense layer
    (:class:`~anybackprop.layers.ScaledDense`, RealMLP's scaling layer), with Adam's steps on the
    scales ``g`` times larger than on the weights (SGD's ``g**2`` times).
    Initial weights come from ``numpy.random.default_rng(seed)`` on the host, so a seed gives
    the same model on every backend. ``init`` is "auto" (He for the relu family, Glorot
    otherwise), "he" or "glorot". The model lives on ``backend`` (default: the current one) in
    ``dtype`` (default: the backend's, float32 unless ANYBACKPROP_DTYPE says otherwise).
    """

    def __init__(
        self,
        layer_sizes: list[int] | tuple[int, ...],
        activation: str | dict | Activation | list = "relu",
        output: str | Activation = "softmax",
        loss: str | None = None,
        *,
        init: str = "auto",
        seed: int | None = 0,
        dtype: Any = None,
        backend: str | Backend | None = None,
        dropout: float | list | None = None,
        norm: str | None = None,
        standardize: bool | str = False,
        target_scale: bool = False,
        bins: int | None = None,
        bin_features: list[int] | None = None,
        feature_scale: float | None = None,
    ) -> None:
        sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple)) else None
        if (
            not sizes
            or len(sizes) < 2
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in sizes)
        ):
            raise ValueError(
                f"layer_sizes must list at least 2 positive ints (inputs, ..., outputs), got {layer_sizes!r}"
            )
        sizes = [int(n) for n in sizes]
        n_hidden = len(sizes) - 2
        hidden = _per_hidden(activation, n_hidden, "activation", lambda s: get_activation(s, HIDDEN_ACTIVATIONS))
        rates = _per_hidden(0.0 if dropout is None else dropout, n_hidden, "dropout", check_rate)
        if norm is not None and (not isinstance(norm, str) or norm not in NORMS):
            raise ValueError(f"unknown norm {norm!r}; accepted values: {', '.join(NORMS)} or None")
        head = get_head(output, loss)
        if not isinstance(standardize, bool) and not (isinstance(standardize, str) and standardize in SCALERS):
            raise ValueError(f"standardize must be True, False or one of {', '.join(SCALERS)}, got {standardize!r}")
        if not isinstance(target_scale, bool) or (target_scale and head.output.name != "identity"):
            raise ValueError(f"target_scale must be True (identity output only) or False, got {target_scale!r}")
        gain = None if feature_scale is None else check_gain(feature_scale, "feature_scale")

        def dense(i: int, n_in: int, n_out: int, act: Any, scheme: str) -> Dense:
            """The ``i``-th dense layer; the first scales its inputs where asked (``feature_scale``)."""
            if i == 0 and gain is not None:
                return ScaledDense(n_in, n_out, act, scheme, gain=gain)
            return Dense(n_in, n_out, act, scheme)

        scaler = SCALERS["standard" if standardize is True else standardize] if standardize else None
        layers: list = [scaler(sizes[0])] if scaler else []
        if bin_features is not None and bins is None:
            raise ValueError("bin_features names the inputs that bins encodes; give bins too")
        binner = None if bins is None else PiecewiseLinear(sizes[0], bins, bin_features)
        if binner is not None:
            layers.append(binner)
        widths = [sizes[0] if binner is None else binner.n_out, *sizes[1:]]
        for i, act in enumerate(hidden):
            scheme = act.init if init == "auto" else init
            if norm is None:
                layers.append(dense(i, widths[i], sizes[i + 1], act, scheme))
            else:
                layers += [
                    dense(i, widths[i], sizes[i + 1], "identity", scheme),
                    NORMS[norm](sizes[i + 1]),
                    ActivationLayer(sizes[i + 1], act),
                ]
            if rates[i] > 0:
                layers.append(Dropout(sizes[i + 1], rates[i]))
        layers.append(dense(n_hidden, widths[-2], sizes[-1], "identity", head.output.init if init == "auto" else init))
        if target_scale:
            layers.append(TargetScale(sizes[-1]))
        self.layer_sizes = sizes
        self.hidden_activations = hidden
        self.init = init
        self.dropout = rates if any(rates) else None
        self.norm = norm
        self.standardize = standardize
        self.target_scale = target_scale
        self.bins = bins
        self.bin_features = None if binner is None or binner.features is None else list(binner.features)
        self.feature_scale = gain
        super().__init__(layers, head, seed=seed, dtype=dtype, backend=backend)

    def mlp_config(self) -> dict:
        """The keyword arguments that rebuild this MLP (JSON-able)."""
        specs = [a.spec for a in self.hidden_activations]
        config = {
            "layer_sizes": self.layer_sizes,
            "activation": specs[0] if specs and all(s == specs[0] for s in specs) else specs,
            "output": self.head.output.name,
            "loss": self.head.loss.name,
            "dtype": self.dtype_name,
        }
        if self.init != "auto":
            config["init"] = self.init
        if self.dropout is not None:
            config["dropout"] = self.dropout[0] if len(set(self.dropout)) == 1 else self.dropout
        if self.norm is not None:
            config["norm"] = self.norm
        if self.standardize:
            config["standardize"] = self.standardize
        if self.target_scale:
            config["target_scale"] = True
        if self.bins is not None:
            config["bins"] = self.bins
        if self.bin_features is not None:
            config["bin_features"] = self.bin_features
        if self.feature_scale is not None:
            config["feature_scale"] = self.feature_scale
        return config

    def config(self) -> dict:
        return {**self.mlp_config(), "layers": self.layer_specs(), "head": self.head.spec()}

    def __repr__(self) -> str:
        c = self.mlp_config()
        extra = "".join(
            f", {k}={c[k]!r}"
            for k in ("init", "dropout", "norm", "standardize", "target_scale", "bins", "bin_features", "feature_scale")
            if k in c
        )
        return (
            f"MLP({c['layer_sizes']}, activation={c['activation']!r}, output={c['output']!r}, "
            f"loss={c['loss']!r}{extra}, dtype={c['dtype']!r}, backend={self.backend.name!r})"
        )


def _per_hidden(value: Any, n_hidden: int, what: str, convert: Any) -> list:
    """``value`` (converted) for every hidden layer, or a list with one per hidden layer."""
    if not isinstance(value, (list, tuple)):
        return [convert(value)] * n_hidden
    if len(value) != n_hidden:
        raise ValueError(f"{what} lists {len(value)} values but the model has {n_hidden} hidden layers")
    return [convert(v) for v in value]
