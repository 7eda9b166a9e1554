"""The training step as a pure function, and its compiled form on JAX.

:func:`gradients` is the part of a step every trainer shares: forward (training mode), the head's
output delta, backward. :func:`pure_step` adds the update and the new layer state and returns
new values from its inputs, writing into none of them::

    (params, state, slots, logits) = pure_step(model, optimizer, params, state, slots, lr, t, x, y, w, draw)

``slots`` are the optimizer's state arrays (``{slot: {key: array}}``), ``lr`` the learning rate
and ``t`` the step's number (Adam's bias corrections), both 0-d arrays so that a compiled step
takes them as inputs; ``draw(shape, dtype)`` gives the dropout layers their uniform draws.

NumPy (and CuPy, torch) train with :class:`anybackprop.training.Trainer`, which runs the same
formulas eagerly and updates in place where it can. On JAX, :class:`CompiledTrainer` traces
:func:`pure_step` once and lets XLA compile it (for a fit of :data:`MIN_STEPS` steps or more,
or of large products): an epoch is one compiled call, read back once: its full minibatches one
``jax.lax.scan`` (rows, targets and weights gathered on the device from the host's permutation,
the same as every backend's; no Python and no host transfer per step), a short last batch one
more step, the epoch's loss and metric, the validation data's, and the divergence guard's
checks, with the optimizer's slots donated to the call that replaces them. Where nothing looks at
the model between epochs (no callbacks), the next epoch is launched from the last one's results
before those are read, so that the host's work between epochs overlaps the device's. Dropout draws
come from a device key: the next number of ``fit``'s seeded generator at each epoch (taken from
it only when the step draws), folded with the step's number, so a seed gives the same run and a
resumed run continues it. This is the one module that uses JAX's transformations (``jit``,
``lax.scan``, ``random``); the formulas it traces are the ones every backend runs.
"""

from __future__ import annotations

import collections
import json
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from .backend import to_numpy
from .divergence import diverged, first_not_finite, largest_magnitude
from .layers import Dense
from .losses import normalized_weights


def gradients(
    model: Any,
    x: Any,
    y: Any,
    w: Any,
    rng: Any,
    part: Any = None,
    params: Any = None,
    state: Any = None,
    start: int = 0,
):
    """``(fwd, grads)`` of one training batch: forward in training mode (dropout draws from
    ``rng``), the head's delta of the batch-mean cost (``w``: raw row weights or None), backward.
    ``part``: the batch is this process's part of a global batch (data-parallel training);
    ``params``/``state``: instead of the model's; ``start``: ``x`` is the output of the model's
    first ``start`` layers (its fixed prefix)."""
    xp = model.backend.xp
    fwd = model.forward_pass(x, training=True, rng=rng, part=part, params=params, state=state, start=start)
    # a part's delta is that of the global batch's cost: weights over its total, rows over its count
    wn = None if w is None else normalized_weights(xp, w, None if part is None else part.weight)
    dz = model.head.delta(xp, model.fast, fwd.logits, y, wn)
    if part is not None and w is None and part.stop - part.start != part.rows:
        dz = dz * ((part.stop - part.start) / part.rows)
    return fwd, model.backward_pass(fwd, dz, params)


def pure_step(
    model: Any, optimizer: Any, params: dict, state: dict, slots: dict, lr: Any, t: Any, x: Any, y: Any, w: Any, draw
) -> tuple[dict, dict, dict, Any]:
    """One training step as a function of its inputs: new ``(params, state, slots)`` and the
    batch's logits (see the module's docstring)."""
    fwd, grads = gradients(model, x, y, w, draw, params=params, state=state)
    params, slots = optimizer.apply(model.backend.xp, params, grads, slots, lr, t)
    return params, {**state, **model.stepped_state(fwd)}, slots, fwd.logits


MIN_STEPS = 128
"""A fit of fewer steps (epochs x minibatches) runs eagerly, unless its matrix products are large
(:data:`MIN_WORK`): compiling costs about what a hundred small eager JAX steps do (0.1-0.3 s on a
laptop CPU), and the compiled functions are reused only by later fits of a model built alike."""
MIN_WORK = 10**10
"""Multiply-adds of a fit (forward and backward, every epoch) from which it is compiled however
few its steps: about 0.1 s of CPU work, what compiling costs."""


def compiles(model: Any, epochs: int, rows: int, batch_size: int) -> bool:
    """Whether ``fit`` trains ``model`` with :class:`CompiledTrainer`: its backend is JAX and the
    fit is long enough to pay for compiling (:data:`MIN_STEPS`, :data:`MIN_WORK`)."""
    if getattr(model.backend, "name", None) != "jax" or not hasattr(model, "stepped_state"):
        return False
    work = 3 * epochs * rows * sum(layer.n_in * layer.n_out for layer in model.layers if isinstance(layer, Dense))
    return epochs * -(-rows // batch_size) >= MIN_STEPS or work >= MIN_WORK


# compiled functions by model structure and optimizer settings (most recent last): the next fit of
# this model, or of another one built alike, reuses them instead of compiling again
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_KEEP = 32


def _structure(model: Any) -> tuple:
    """What a trace of ``model``'s step bakes in: its layers (a built-in kind by its config, any
    other layer by identity: its config may not say everything it does), head, dtype and device."""
    layers = tuple(
        (type(layer), json.dumps(layer.config(), sort_keys=True))
        if type(layer).__module__.startswith("anybackprop.")
        else layer
        for layer in model.layers
    )
    head = json.dumps(model.head.spec(), sort_keys=True)
    return type(model), layers, head, model.dtype_name, model.backend.name, str(model.backend.device)


def _settings(optimizer: Any) -> tuple:
    """What a trace of ``optimizer``'s update bakes in (not the learning rate nor the step)."""
    skip = {"lr", "base_lr", "t", "state"}
    plain = tuple(
        sorted((k, v) for k, v in vars(optimizer).items() if k not in skip and isinstance(v, (bool, int, float, str)))
    )
    return type(optimizer), plain, tuple(sorted(optimizer._decay))


def compiled_for(model: Any, optimizer: Any) -> _Compiled:
    """The compiled functions for ``model`` with ``optimizer``'s settings (made on first use)."""
    key = (_structure(model), _settings(optimizer))
    found = _COMPILED.pop(key, None) or _Compiled(model, optimizer)
    _COMPILED[key] = found
    while len(_COMPILED) > _KEEP:
        _COMPILED.popitem(last=False)
    return found


class _Compiled:
    """The jitted epoch of models built as ``model`` is, trained with ``optimizer``'s settings
    (:meth:`CompiledTrainer.epoch`); it traces ``model``'s passes and ``optimizer``'s update (any model
    of the same structure gives the same trace, on its own arrays)."""

    def __init__(self, model: Any, optimizer: Any) -> None:
        jax = model.backend.library
        jnp, random = jax.numpy, jax.random
        self.jax = jax
        self.draws = False  # whether the traced step draws random numbers (dropout), known once traced

        def step(carry, x, y, w, lr, t, key):
            params, state, slots = carry
            params, state, slots, z = pure_step(
                model, optimizer, params, state, slots, lr, t, x, y, w, _drawer(self, key)
            )
            return (params, state, slots), z

        def epoch(kept, slots, lr, t0, seed, data, y, w, order, val, batch_size):
            """Every step of an epoch (the full minibatches in one scan, then a short last one),
            then its figures and the divergence guard's checks: see :meth:`CompiledTrainer.epoch`."""
            m = data.shape[0]
            steps, full = m // batch_size, m - m % batch_size
            lr, t0 = jnp.asarray(lr, dtype=model.dtype), jnp.asarray(t0, dtype=model.dtype)
            key = random.key(seed)
            if order is None:
                order = jnp.arange(m)
            else:  # the targets and weights in the epoch's order, gathered here
                y = jnp.take(y, order, axis=0)
                w = None if w is None else jnp.take(w, order, axis=0)

            def body(carry, batch):
                i, index, yb, wb = batch
                xb = jnp.take(data, index, axis=0)
                return step(carry, xb, yb, wb, lr, t0 + jnp.astype(i, lr.dtype), random.fold_in(key, i))

            logits, new = [], (*kept, slots)
            if steps:
                batches = (
                    jnp.arange(steps),
                    jnp.reshape(order[:full], (steps, batch_size)),
                    jnp.reshape(y[:full], (steps, batch_size, *y.shape[1:])),
                    None if w is None else jnp.reshape(w[:full], (steps, batch_size)),
                )
                new, z = jax.lax.scan(body, new, batches)
                logits.append(jnp.reshape(z, (full, z.shape[-1])))
            if full < m:
                xb = jnp.take(data, order[full:], axis=0)
                wb = None if w is None else w[full:]
                new, z = step(new, xb, y[full:], wb, lr, t0 + steps, random.fold_in(key, steps))
                logits.append(z)
            params, state, slots = new
            terms = [model.score_terms(logits[0] if len(logits) == 1 else jnp.concat(logits, axis=0), y, w)]
            if val is not None:
                z = model.forward_pass(val[0], params=params, state=state).logits
                terms.append(model.score_terms(z, val[1], val[2]))
            peak = largest_magnitude(jnp, list(params.values()))
            terms = jnp.concat([*terms, jnp.reshape(jnp.astype(peak, terms[0].dtype), (1,))])
            return (params, state, slots), terms

        # the parameters and state it starts from are not donated: they are what the divergence guard
        # keeps (NumPy's guard keeps a copy; a program that selected them back when the epoch diverged
        # would keep them alive to its end all the same); the optimizer's slots are donated
        self.epoch = jax.jit(epoch, donate_argnums=1, static_argnames="batch_size")


def _drawer(owner: _Compiled, key: Any) -> Any:
    """``draw(shape, dtype)``: uniform draws in [0, 1), a fresh key for each call in the step's
    trace; a trace that draws marks ``owner.draws``."""
    random = owner.jax.random
    calls = [0]

    def draw(shape: tuple[int, ...], dtype: Any) -> Any:
        owner.draws = True
        calls[0] += 1
        return random.uniform(random.fold_in(key, calls[0]), shape, dtype)

    return draw


def _tracing_errors(jax: Any) -> tuple[type[BaseException], ...]:
    """What JAX raises when a traced function reads a value on the host."""
    errors = jax.errors
    return (errors.ConcretizationTypeError, errors.TracerArrayConversionError, errors.TracerIntegerConversionError)


def _peek(rng: Any) -> int:
    """The number ``rng.integers(2**62)`` would give next, without drawing it."""
    twin = type(rng.bit_generator)()
    twin.state = rng.bit_generator.state
    return int(type(rng)(twin).integers(2**62))


class CompiledTrainer:
    """Trains a JAX model with its epochs compiled (see the module's docstring), beside the eager
    ``trainer`` (:class:`anybackprop.training.Trainer`) that set up its optimizer; what ``fit``
    and the callbacks see is the same: after each epoch the model's ``params`` and ``state`` and
    the optimizer's state and counters are the new ones. A model whose layers cannot be traced (a
    custom layer that reads a value on the host) trains eagerly, with a warning that says why."""

    def __init__(self, trainer: Any) -> None:
        self.model, self.optimizer = trainer.model, trainer.optimizer
        self.functions: _Compiled | None = compiled_for(self.model, self.optimizer)
        self._ahead: _Launched | None = None  # the next epoch, launched before this one was read

    def epoch(
        self,
        epoch: int,
        x: Any,
        y: Any,
        w: Any,
        val: Any,
        batch_size: int,
        rng: Any,
        shuffle: bool,
        ss_tot: tuple,
        then: Callable[[int], None] | None = None,
    ) -> dict[str, float] | None:
        """Epoch ``epoch`` (1-based) of ``fit`` in one compiled call, read back once: the rows in
        the order of ``rng.permutation`` (``shuffle``; as on every backend), the steps, the loss and
        metric of the steps' logits and of the validation data ``val`` (None or ``(x, y, w)``;
        ``ss_tot``: the training and validation targets' for R^2), and the divergence guard's
        checks (:mod:`anybackprop.divergence`): where the loss, the validation loss or the largest
        parameter is not finite, the model keeps the parameters and state the epoch started from
        (the call does not donate them, so nothing is copied to keep them) and this raises the
        guard's error. Returns the epoch's figures by
        name, or None (nothing drawn from ``rng``, nothing changed) for a model JAX cannot trace:
        an eager epoch is then the caller's.

        ``then``: nothing looks at the model between this epoch and the next (no callbacks), so
        the next one is launched before this one is read, from its results still being computed:
        ``then(epoch)`` sets the optimizer up for it (its 0-based number), and the host's work
        between epochs (reading the figures, drawing the next order) overlaps the device's. The
        generator is drawn from in the same order, so the results are the same as one at a time,
        and so is what a schedule that raises for the next epoch leaves (this epoch read and
        kept). Only an interrupt during the read leaves the optimizer's slots an epoch further on
        than one at a time would (valid arrays either way).
        """
        launched = self._ahead if self.ahead_of(epoch) else self._launch(epoch, x, y, w, val, batch_size, rng, shuffle)
        self._ahead = None
        if launched is None:
            return None
        if then is not None:
            try:
                then(epoch)
            except BaseException:  # as one at a time: this epoch is read before the next one is set up
                self._finish(launched, ss_tot)
                raise
            self._ahead = self._launch(epoch + 1, x, y, w, val, batch_size, rng, shuffle, after=launched)
        return self._finish(launched, ss_tot)

    def ahead_of(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) was launched already (the optimizer set up for it)."""
        return self._ahead is not None and self._ahead.epoch == epoch

    def _launch(
        self, epoch: int, x: Any, y: Any, w: Any, val: Any, batch_size: int, rng: Any, shuffle: bool, after: Any = None
    ) -> _Launched | None:
        """The compiled call of epoch ``epoch``, from the model's parameters and state or from
        ``after``'s results; the optimizer takes its new slots (the old ones are donated)."""
        f, model, opt = self.functions, self.model, self.optimizer
        if f is None:
            return None
        drawn = rng.bit_generator.state
        order = rng.permutation(x.shape[0]) if shuffle else None
        start = (model.params, model.state) if after is None else after.ends[:2]
        t0 = (opt._step_count() if after is None else after.t) + 1  # the first step's number
        try:
            ends, terms = f.epoch(start, opt.state, opt.lr, t0, _peek(rng), x, y, w, order, val, batch_size=batch_size)
        except _tracing_errors(f.jax) as exc:  # raised while tracing: nothing ran
            warnings.warn(
                f"the jax backend cannot compile this model's training step, so it trains eagerly (slower): "
                f"{str(exc).splitlines()[0]}",
                stacklevel=4,
            )
            self.functions, rng.bit_generator.state = None, drawn
            return None
        if f.draws:  # the key was the generator's next number: take it (a model without dropout leaves it)
            rng.integers(2**62)
        # a traced dict comes back in sorted key order: keep the model's (files, reductions rely on it)
        opt.state = {slot: {k: ends[2][slot][k] for k in opt.state[slot]} for slot in opt.state}
        return _Launched(epoch, ends, terms, t0 - 1 + (-(-x.shape[0] // batch_size) if opt.counters else 0))

    def _finish(self, launched: _Launched, ss_tot: tuple) -> dict[str, float]:
        """Reads ``launched``'s figures, checks them and gives the model its results."""
        model, opt = self.model, self.optimizer
        if opt.counters:
            opt.t = launched.t
        figures = [float(v) for v in to_numpy(launched.terms)]
        metric, head = model.head.metric_name, model.head
        values = {"loss": figures[0], metric: head.metric(figures[1], ss_tot[0])}
        if len(figures) > 3:
            values["val_loss"], values[f"val_{metric}"] = figures[2], head.metric(figures[3], ss_tot[1])
        bad = first_not_finite(values) or (None if math.isfinite(figures[-1]) else ("largest parameter", figures[-1]))
        if bad is not None:  # the model keeps the parameters and state the epoch started from
            raise diverged(launched.epoch, bad, launched.epoch - 1, opt.base_lr)
        params, state, _ = launched.ends
        model.params = {k: params[k] for k in model.params}
        model.state = {k: state[k] for k in model.state}
        return values


class _Launched(NamedTuple):
    """A compiled epoch under way: its number, its results ``(params, state, slots)``, its
    figures (device arrays) and the optimizer's step count after it."""

    epoch: int
    ends: tuple
    terms: Any
    t: int
