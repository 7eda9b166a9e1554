"""Gradient checking: analytic gradients against central finite differences in float64.

For each parameter entry ``p``: ``numeric = (J(p + eps) - J(p - eps)) / (2 eps)``, where ``J`` is
the training-mode cost that ``loss_and_grads`` differentiates (batch statistics; dropout masks
drawn again from the same seed for every evaluation, so they stay fixed). Parameters are perturbed
by ``where`` into new arrays, never in place, so read-only arrays work too.

**Kinks.** relu and leaky relu have no derivative at 0 (anybackprop takes ``g'(0)`` from the
left), so a central difference whose perturbation moves a pre-activation across 0 measures an
average of two slopes, not the gradient. Every evaluation compares the signs of the relu and leaky
relu layers' pre-activations with those of the unperturbed pass; an entry whose perturbation
changes one is evaluated again with steps ``eps / 10`` and ``eps / 100``, then, if a side still
crosses, with the one-sided difference of the side that does not, and is skipped (reported, not
compared) when both sides cross even then.

**Verdict.** An entry passes when ``|analytic - numeric| <= atol + rtol |numeric|`` (defaults
``atol = 1e-7``, ``rtol = 1e-5``: central differences in float64 with ``eps = 1e-6`` resolve a
derivative to about ``1e-9`` absolute; see ``shared/notes/reliability.md``, goal G1). The check
passes when every compared entry does. The error reported per entry is the relative error
``|analytic - numeric| / max(|analytic| + |numeric|, 1e-8)``: near 1 for a wrong derivative, but
also large for a gradient entry so small (1e-9) that the rounding of the cost is of its size,
which is why the verdict uses the absolute floor ``atol``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import host_rng, to_numpy
from .losses import normalized_weights
from .network import Sequential
from .validation import check_positive_float

KINKED = ("relu", "leaky_relu")
"""Activations with a kink at 0 that the check detects from the pre-activations."""
SMALLER_STEPS = (10.0, 100.0)
"""Divisors of ``eps`` tried, in order, for an entry whose perturbation crossed a kink."""
FLOOR = 1e-8
"""Denominator floor of the relative error: an entry where both gradients are 0 has error 0."""


@dataclass(frozen=True)
class Recheck:
    """An entry whose perturbation crossed a kink: ``how`` it was checked instead ("central, step
    1e-07", "one-sided (+), step 1e-08") or "skipped" (both sides crossed at every step)."""

    key: str
    index: tuple[int, ...]
    how: str


class GradcheckResult(float):
    """What :func:`gradcheck` found. It is the worst relative error (a float, so that
    ``gradcheck(...) < 1e-6`` keeps working), and holds:

    * ``errors``: ``{parameter key: worst relative error}`` (``{"direction": e}`` in directional mode);
    * ``failures``: ``{parameter key: entries outside the tolerance}``;
    * ``passed``: True when no compared entry is outside ``|a - n| <= atol + rtol |n|``;
    * ``atol``, ``rtol``, ``eps``, ``mode``;
    * ``rechecked``: the :class:`Recheck` of every entry whose perturbation crossed a relu or
      leaky relu kink (those "skipped" were not compared).

    ``str(result)`` is a report, one line per parameter, worst first."""

    errors: dict[str, float]
    failures: dict[str, int]
    passed: bool
    atol: float
    rtol: float
    eps: float
    mode: str
    rechecked: tuple[Recheck, ...]
    shapes: dict[str, tuple[int, ...]]

    def __new__(cls, errors: dict[str, float], failures: dict[str, int], **fields: Any) -> GradcheckResult:
        self = super().__new__(cls, max(errors.values(), default=0.0))
        self.errors, self.failures = errors, failures
        self.passed = not any(failures.values())
        for name, value in fields.items():
            setattr(self, name, value)
        return self

    @property
    def skipped(self) -> tuple[Recheck, ...]:
        return tuple(r for r in self.rechecked if r.how == "skipped")

    def verdict(self) -> str:
        """One line: pass or fail, the tolerance, and the kinks."""
        crossed = len(self.rechecked)
        kinks = f"; {crossed} entries re-checked at a relu kink ({len(self.skipped)} skipped)" if crossed else ""
        word = "PASS" if self.passed else f"FAIL ({sum(self.failures.values())} entries outside)"
        return (
            f"{word}: {self.mode} check, worst relative error {float(self):.2e}, tolerance |a - n| <= "
            f"{self.atol:g} + {self.rtol:g} |n| (eps {self.eps:g}){kinks}"
        )

    def __str__(self) -> str:
        lines = [self.verdict()]
        for key, error in sorted(self.errors.items(), key=lambda kv: -kv[1]):
            shape = str(self.shapes.get(key, ()))
            failed = self.failures.get(key, 0)
            lines.append(
                f"{key:>9}  {shape:>12}  max relative error {error:.3e}  "
                f"{'ok' if not failed else f'{failed} entries outside the tolerance'}"
            )
        lines += [f"{r.key:>9}  {r.index!s:>12}  crossed a kink: {r.how}" for r in self.rechecked]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"GradcheckResult({self.verdict()})"

    def __reduce__(self) -> Any:  # a float subclass with attributes: copy and pickle the attributes too
        return (_rebuild, (float(self), self.__dict__))


def _rebuild(value: float, fields: dict) -> GradcheckResult:
    result = float.__new__(GradcheckResult, value)
    result.__dict__.update(fields)
    return result


class _Cost:
    """The training-mode cost of a float64 model at given parameters, and whether that evaluation
    moved a relu or leaky relu pre-activation across 0 from the unperturbed pass."""

    def __init__(self, model: Sequential, X: Any, Y: Any, sample_weight: Any, seed: int) -> None:
        self.model, self.seed, self.xp = model, seed, model.backend.xp
        self.x, self.y, w = model.check_data(X, Y, sample_weight)
        self.wn = None if w is None else normalized_weights(self.xp, w)
        self.kinked = [i for i, layer in enumerate(model.layers) if _kinked(layer)]
        self.base: list | None = None
        self.value, self.base = self(model.params)

    def __call__(self, params: dict) -> tuple[float, Any]:
        """``(cost, signs)``: signs is True when a kinked pre-activation changed sign, or, for the
        unperturbed pass itself, the list of sign masks."""
        model, xp = self.model, self.xp
        fwd = model.forward_pass(self.x, training=True, rng=host_rng(self.seed), params=params)
        cost = float(model.head.cost(xp, fwd.logits, self.y, self.wn, model.fast))
        signs = [fwd.caches[i].z > 0 for i in self.kinked]  # a fast path may keep g(Z) there: same signs
        if self.base is None:
            return cost, signs
        return cost, any(bool(xp.any(s != b)) for s, b in zip(signs, self.base, strict=True))

    def derivative(self, move: Callable[[float], dict], eps: float) -> tuple[float | None, str | None]:
        """The derivative along ``move(step)`` (parameters moved by ``step``): central with
        ``eps``; at a kink, central with a smaller step, else one-sided; ``(None, "skipped")``
        when both sides cross at every step. The second item says how, None for the plain case."""
        for divisor in (1.0, *SMALLER_STEPS):
            step = eps / divisor
            (plus, up), (minus, down) = self(move(step)), self(move(-step))
            if not up and not down:
                return (plus - minus) / (2 * step), None if divisor == 1.0 else f"central, step {step:g}"
        if not up:
            return (plus - self.value) / step, f"one-sided (+), step {step:g}"
        if not down:
            return (self.value - minus) / step, f"one-sided (-), step {step:g}"
        return None, "skipped"


def _kinked(layer: Any) -> bool:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "name", None) in KINKED


def _numeric(model: Sequential, X: Any, Y: Any, eps: float, sample_weight: Any, seed: int) -> tuple[dict, list]:
    """Kink-aware central differences of every parameter entry: ``({key: host list of values
    (None: skipped)}, [Recheck])``."""
    backend, xp = model.backend, model.backend.xp
    cost = _Cost(model, X, Y, sample_weight, seed)
    values: dict[str, list] = {}
    rechecked = []
    for key, p in model.params.items():
        shape = tuple(p.shape)
        size = 1
        for n in shape:
            size *= n
        index = xp.reshape(xp.arange(size, device=backend.device), shape)
        values[key] = []
        for i in range(size):
            hit = index == i
            value, how = cost.derivative(
                lambda step, hit=hit, p=p, key=key: {**model.params, key: xp.where(hit, p + step, p)}, eps
            )
            values[key].append(value)
            if how is not None:
                rechecked.append(Recheck(key, _unravel(i, shape), how))
    return values, rechecked


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for n in reversed(shape):
        out.append(i % n)
        i //= n
    return tuple(reversed(out))


def numerical_grads(
    model: Sequential, X: Any, Y: Any, eps: float = 1e-6, *, sample_weight: Any = None, seed: int = 0
) -> dict[str, Any]:
    """Central-difference gradients of the training-mode cost, same keys and shapes as ``params``;
    at a relu kink re-checked as :func:`gradcheck` does (an entry skipped there is NaN).

    ``model`` should be float64 (float32 cannot resolve the differences; see :func:`gradcheck`).
    """
    backend, xp = model.backend, model.backend.xp
    with backend.activate():
        values, _ = _numeric(model, X, Y, eps, sample_weight, seed)
        return {
            key: xp.reshape(
                backend.asarray([float("nan") if v is None else v for v in values[key]], model.dtype), p.shape
            )
            for key, p in model.params.items()
        }


def gradcheck(
    model: Sequential,
    X: Any,
    Y: Any,
    *,
    eps: float = 1e-6,
    mode: str = "full",
    seed: int = 0,
    sample_weight: Any = None,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    verbose: bool = False,
) -> GradcheckResult:
    """Check ``model``'s analytic gradients against central differences, on a float64 copy of
    the model (the model itself is untouched); returns a :class:`GradcheckResult`: the worst
    relative error (a float), per parameter, and whether every entry is within
    ``|a - n| <= atol + rtol |n|`` (see the module docstring for the kinks of relu).

    ``mode="full"`` perturbs every parameter entry (2 forward passes each); ``mode="directional"``
    checks the derivative along one random direction ``v`` of all parameters at once,
    ``<grad, v>`` against ``(J(p + eps v) - J(p - eps v)) / (2 eps)``, in 2 forward passes
    whatever the size of the network (JAX's ``check_grads``, PyTorch's fast mode). ``seed`` fixes
    the dropout masks (and the direction). ``verbose`` prints the report.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"gradcheck expects an anybackprop model (MLP or Sequential), got {type(model).__name__}")
    if not isinstance(mode, str) or mode not in ("full", "directional"):
        raise ValueError(f"unknown mode {mode!r}; accepted values: full, directional")
    check_positive_float(eps, "eps")
    check_positive_float(atol, "atol", allow_zero=True)
    check_positive_float(rtol, "rtol", allow_zero=True)
    model64 = model.copy(dtype="float64")
    with model64.backend.activate():  # every comparison runs on the model's device
        _, analytic = model64.loss_and_grads(X, Y, sample_weight, seed=seed)
        if mode == "directional":
            pairs, rechecked = _directional(model64, X, Y, sample_weight, analytic, eps, seed)
        else:
            numeric, rechecked = _numeric(model64, X, Y, eps, sample_weight, seed)
            pairs = {key: (to_numpy(analytic[key]).reshape(-1).tolist(), numeric[key]) for key in model64.params}
    errors, failures = {}, {}
    for key, (a_values, n_values) in pairs.items():
        compared = [(a, n) for a, n in zip(a_values, n_values, strict=True) if n is not None]
        errors[key] = max((abs(a - n) / max(abs(a) + abs(n), FLOOR) for a, n in compared), default=0.0)
        failures[key] = sum(abs(a - n) > atol + rtol * abs(n) for a, n in compared)
    shapes = {key: tuple(p.shape) for key, p in model64.params.items()}
    result = GradcheckResult(
        errors, failures, atol=atol, rtol=rtol, eps=eps, mode=mode, rechecked=tuple(rechecked), shapes=shapes
    )
    if verbose:
        print(result)
    return result


def _directional(
    model: Sequential, X: Any, Y: Any, sample_weight: Any, analytic: dict, eps: float, seed: int
) -> tuple[dict, list]:
    """``({"direction": ([<grad, v>], [central difference along v])}, [Recheck])``."""
    backend, xp = model.backend, model.backend.xp
    rng = host_rng(seed)
    direction = {k: rng.standard_normal(tuple(p.shape)) for k, p in model.params.items()}
    norm = sum(float((d * d).sum()) for d in direction.values()) ** 0.5
    v = {k: backend.asarray(d / norm, model.dtype) for k, d in direction.items()}
    slope = sum(float(xp.sum(analytic[k] * v[k])) for k in v)
    cost = _Cost(model, X, Y, sample_weight, seed)
    numeric, how = cost.derivative(lambda step: {k: p + step * v[k] for k, p in model.params.items()}, eps)
    rechecked = [] if how is None else [Recheck("direction", (), how)]
    return {"direction": ([slope], [numeric])}, rechecked
