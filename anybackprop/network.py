"""The multi-layer perceptron: a stack of :class:`~anybackprop.layers.Dense` layers and a loss.

Forward keeps, per layer, what backward needs (note 003): ``(A_prev, Z, A)``. Backward is note
004's Theorem 5.4 in row-major form: from the output delta ``dZ_L`` (``(A - Y)/m`` for the paired
output/loss, ``g'(Z) * dJ/dA`` otherwise), for l = L..1::

    dW_l = A_{l-1}.T @ dZ_l      db_l = sum(dZ_l, axis=0)
    dA_{l-1} = dZ_l @ W_l.T      dZ_{l-1} = g'_{l-1}(Z_{l-1}) * dA_{l-1}
"""

from __future__ import annotations

import numbers
from typing import Any

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, Activation, get_activation
from .backend import Backend, backend_for, host_rng, to_numpy
from .layers import INIT_SCHEMES, Dense
from .losses import get_loss, output_delta
from .validation import check_targets, check_X


class MLP:
    """A fully-connected network ``layer_sizes[0] -> ... -> layer_sizes[-1]``.

    ``activation`` is one name for every hidden layer or a list with one per hidden layer
    ("identity", "sigmoid", "tanh", "relu", "leaky_relu" or ``{"name": "leaky_relu", "slope": s}``);
    ``output`` is "softmax", "sigmoid" or "identity"; ``loss`` defaults to the output's pair
    ("cross_entropy", "binary_cross_entropy", "mse"), and "mse" is allowed with any output.
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
    ) -> None:
        sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple)) else None
        if not sizes or len(sizes) < 2 or any(
            isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in sizes
        ):
            raise ValueError(f"layer_sizes must list at least 2 positive ints (inputs, ..., outputs), got {layer_sizes!r}")
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown init {init!r}; accepted values: {', '.join(INIT_SCHEMES)}")
        n_hidden = len(sizes) - 2
        if isinstance(activation, (list, tuple)):
            specs = list(activation)
        else:
            specs = [get_activation(activation, HIDDEN_ACTIVATIONS)] * n_hidden
        if len(specs) != n_hidden:
            raise ValueError(f"activation lists {len(specs)} names but the model has {n_hidden} hidden layers")
        hidden = [get_activation(spec, HIDDEN_ACTIVATIONS) for spec in specs]
        self.output = get_activation(output, OUTPUT_ACTIVATIONS)
        self.loss_fn = get_loss(loss, self.output)
        self.backend = backend_for(backend)
        self.dtype = self.backend.float_dtype(dtype)
        self.init = init
        self.seed = seed
        self.layers = [
            Dense(i + 1, int(sizes[i]), int(sizes[i + 1]), act) for i, act in enumerate(hidden + [self.output])
        ]
        rng = host_rng(seed)
        self.params: dict[str, Any] = {}
        for layer in self.layers:
            self.params[layer.W] = self.backend.asarray(layer.initial_weights(rng, init), self.dtype)
            self.params[layer.b] = self.backend.xp.zeros(layer.n_out, dtype=self.dtype, device=self.backend.device)

    # --- description ---------------------------------------------------------------------------

    @property
    def layer_sizes(self) -> list[int]:
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def n_features(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def hidden_activations(self) -> list[Activation]:
        return [layer.activation for layer in self.layers[:-1]]

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.backend.xp.float64 else "float32"

    @property
    def is_classifier(self) -> bool:
        return self.output.name in ("softmax", "sigmoid")

    def config(self) -> dict:
        """Everything but the parameters needed to rebuild this model (JSON-able)."""
        specs = [a.spec for a in self.hidden_activations]
        return {
            "layer_sizes": self.layer_sizes,
            "activation": specs[0] if specs and all(s == specs[0] for s in specs) else specs,
            "output": self.output.name,
            "loss": self.loss_fn.name,
            "dtype": self.dtype_name,
        }

    def __repr__(self) -> str:
        c = self.config()
        return (
            f"MLP({c['layer_sizes']}, activation={c['activation']!r}, output={c['output']!r}, "
            f"loss={c['loss']!r}, dtype={c['dtype']!r}, backend={self.backend.name!r})"
        )

    def copy(self, *, dtype: Any = None, backend: str | Backend | None = None) -> "MLP":
        """The same architecture and parameter values, optionally in another dtype or backend
        (None keeps this model's)."""
        target = self.backend if backend is None else backend_for(backend)
        c = self.config()
        clone = MLP(
            c["layer_sizes"],
            activation=self.hidden_activations,
            output=self.output,
            loss=c["loss"],
            dtype=self.dtype_name if dtype is None else dtype,
            backend=target,
        )
        clone.set_params({k: v if target is self.backend else to_numpy(v) for k, v in self.params.items()})
        return clone

    def set_params(self, params: dict) -> None:
        """Replace every parameter with a copy of ``params`` (arrays of this backend or NumPy),
        checking names and shapes."""
        if set(params) != set(self.params):
            raise ValueError(f"params must have the keys {sorted(self.params)}, got {sorted(params)}")
        new = {}
        for key, value in params.items():
            arr = self.backend.asarray(value, self.dtype, name=f"params[{key!r}]")
            if tuple(arr.shape) != tuple(self.params[key].shape):
                raise ValueError(f"params[{key!r}] has shape {tuple(arr.shape)}, expected {tuple(self.params[key].shape)}")
            new[key] = self.backend.xp.asarray(arr, copy=True)  # training updates in place: never alias the caller's
        self.params = new

    # --- maths -------------------------------------------------------------------------------

    def _forward(self, xp: Any, x: Any) -> list[tuple[Any, Any, Any]]:
        """Per layer ``(A_prev, Z, A)`` for a checked batch ``x``."""
        caches = []
        a = x
        kernels = self.backend.kernels
        for layer in self.layers:
            z, a_next = layer.forward(xp, self.params, a, kernels)
            caches.append((a, z, a_next))
            a = a_next
        return caches

    def _backward(self, xp: Any, caches: list, y: Any) -> dict[str, Any]:
        """Gradients of the batch-mean loss, with the keys and shapes of ``params``."""
        grads: dict[str, Any] = {}
        kernels = self.backend.kernels
        _, z, a = caches[-1]
        dz = output_delta(xp, self.loss_fn, self.output, z, a, y, kernels)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            a_prev = caches[i][0]
            grads[layer.W], grads[layer.b], da_prev = layer.backward(xp, self.params, a_prev, dz, i > 0, kernels)
            if i > 0:
                _, z_prev, a_prev_out = caches[i - 1]
                backward = self.layers[i - 1].activation.backward
                dz = kernels.get(backward, backward)(xp, z_prev, a_prev_out, da_prev)
        return grads

    def _loss(self, xp: Any, caches: list, y: Any) -> Any:
        """The batch-mean loss as a 0-d array (no host read)."""
        _, z, a = caches[-1]
        return self.loss_fn.value(xp, z, a, y)

    def _check_X(self, X: Any, name: str = "X") -> Any:
        return check_X(self.backend, X, self.n_features, self.dtype, name)

    def _check_XY(self, X: Any, Y: Any) -> tuple[Any, Any]:
        x = self._check_X(X)
        y = check_targets(self.backend, Y, self.output.name, self.n_outputs, x.shape[0], self.dtype)
        return x, y

    # --- public API --------------------------------------------------------------------------

    def forward(self, X: Any) -> Any:
        """Output activations ``A_L`` of shape ``(m, n_outputs)``."""
        with self.backend.activate():
            return self._forward(self.backend.xp, self._check_X(X))[-1][2]

    def loss(self, X: Any, Y: Any) -> float:
        """The batch-mean loss of ``(X, Y)`` as a Python float."""
        xp = self.backend.xp
        with self.backend.activate():
            x, y = self._check_XY(X, Y)
            return float(self._loss(xp, self._forward(xp, x), y))

    def loss_and_grads(self, X: Any, Y: Any) -> tuple[float, dict[str, Any]]:
        """``(loss, grads)``; ``grads`` has the keys and shapes of ``params``."""
        xp = self.backend.xp
        with self.backend.activate():
            x, y = self._check_XY(X, Y)
            caches = self._forward(xp, x)
            return float(self._loss(xp, caches, y)), self._backward(xp, caches, y)

    def fit(self, X: Any, Y: Any, **kwargs: Any) -> Any:
        """Train on ``(X, Y)``; see :func:`anybackprop.training.fit` for the arguments."""
        from .training import fit

        return fit(self, X, Y, **kwargs)

    def predict(self, X: Any) -> Any:
        """Class labels (softmax: ``argmax``; sigmoid: ``a >= 0.5``) or values (identity);
        shape ``(m,)`` for one output (and for softmax), else ``(m, n_outputs)``."""
        from .training import predict

        return predict(self, X)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities: softmax rows ``(m, C)``; one sigmoid output gives ``(m, 2)``
        columns ``[P(0), P(1)]``, several give ``(m, k)``."""
        from .training import predict_proba

        return predict_proba(self, X)

    def score(self, X: Any, Y: Any) -> float:
        """Accuracy (classification) or R^2 = 1 - SS_res / SS_tot with both sums pooled over
        all outputs (regression)."""
        from .training import score

        return score(self, X, Y)
