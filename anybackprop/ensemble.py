"""Averaging several trained networks: :class:`Ensemble`.

An ensemble of ``N`` members with the same input width, output width and head predicts from the
mean of their logits, ``Z = (Z_1 + ... + Z_N) / N`` (each ``Z_k`` the last layer's output of
member ``k`` in inference mode, shape ``(m, n_outputs)``), and applies the head to ``Z``:
softmax of the mean logits (the normalised geometric mean of the members' probabilities), the
sigmoid of the mean logit, or, for regression, the mean of the members' predictions (a
:class:`~anybackprop.layers.TargetScale` last layer is linear, so the mean in the target's
units is the members' mean). Members differ by their seed (initial weights, shuffles, dropout);
:class:`~anybackprop.tables.TabularModel` trains them (``ensemble=N``), saves them in one file and
exports the mean of the members' logits into one ONNX graph.

An ensemble is a :class:`~anybackprop.network.Sequential` for inference: ``forward``,
``predict``, ``predict_proba``, ``score`` and ``loss`` work as for one network; it has no
parameters of its own and is not trained itself (train its members).
"""

from __future__ import annotations

from typing import Any

from .network import ForwardPass, Sequential

MAX_MEMBERS = 64
"""The most members an ensemble (and a model file) may hold."""


class Ensemble(Sequential):
    """The members' mean logits under the first member's head; see the module docstring.
    ``members`` is a list of 1 to :data:`MAX_MEMBERS` trained networks on one backend with one
    dtype, the same ``n_features``, ``n_outputs`` and head."""

    def __init__(self, members: list) -> None:  # no parameters of its own: Sequential's init is not run
        if not isinstance(members, (list, tuple)) or not 1 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"members must be a list of 1 to {MAX_MEMBERS} networks, got {members!r}")
        first = members[0]
        for k, member in enumerate(members):
            if not isinstance(member, Sequential) or isinstance(member, Ensemble):
                raise TypeError(f"members[{k}] must be a network (Sequential or MLP), got {type(member).__name__}")
            same = (
                member.n_features == first.n_features
                and member.n_outputs == first.n_outputs
                and member.head.spec() == first.head.spec()
                and member.backend.name == first.backend.name
                and member.dtype_name == first.dtype_name
            )
            if not same:
                raise ValueError(
                    f"members[{k}] has {member.n_features} inputs, {member.n_outputs} outputs, head "
                    f"{member.head.spec()}, {member.dtype_name} on {member.backend.name}; members[0] has "
                    f"{first.n_features}, {first.n_outputs}, {first.head.spec()}, {first.dtype_name} on "
                    f"{first.backend.name}: members must agree"
                )
        self.members = list(members)
        self.head, self.backend, self.dtype, self.fast = first.head, first.backend, first.dtype, first.fast
        self.layers, self.seed = first.layers, first.seed
        self._product_per_row = max(member._product_per_row for member in members)  # the thread policy's measure
        self.params: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

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
        """The mean of the members' logits on a checked batch ``x``, in inference mode (the
        caches are the first member's: nothing runs backward through an ensemble)."""
        if training or params is not None or state is not None or part is not None or start:
            raise TypeError("an Ensemble only predicts: train each of its members instead")
        passes = [member.forward_pass(x) for member in self.members]
        total = passes[0].logits
        for one in passes[1:]:
            total = total + one.logits
        return ForwardPass(total / len(passes), passes[0].caches, passes[0].ctx)

    def fit(self, X: Any, Y: Any, **kwargs: Any) -> Any:
        raise TypeError("an Ensemble only predicts: train each of its members instead")

    def copy(self, *, dtype: Any = None, backend: Any = None) -> Ensemble:
        """An ensemble of the members' copies (:meth:`Sequential.copy`'s options)."""
        return Ensemble([member.copy(dtype=dtype, backend=backend) for member in self.members])

    def summary(self) -> str:
        return f"Ensemble of {len(self.members)} members (their logits averaged), each:\n{self.members[0].summary()}"

    def __repr__(self) -> str:
        return f"Ensemble({len(self.members)} x {self.members[0]!r})"
