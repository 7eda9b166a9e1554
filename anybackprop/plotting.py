"""Training curves and 2-D decision boundaries (matplotlib: optional extra ``plot``).

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``): no
pyplot, no ``matplotlib.use``, so the user's backend (a notebook's inline one) is left alone.
Each function returns its Figure (a notebook shows it as the cell's value) and writes it, atomically,
only when given a ``path``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .backend import to_numpy
from .files import atomic_open


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib, an optional extra: pip install 'anybackprop[plot]'") from None
    return Figure(**kwargs)


def plot_training(
    history: Any, path: str | os.PathLike | None = None, model: Any = None, data: tuple[Any, Any] | None = None
) -> Any:
    """Loss and metric per epoch (training and validation); with a 2-input ``model`` and
    ``data=(X, y)``, also its decision boundary. Returns the Figure; writes it to ``path`` if given."""
    boundary = model is not None and model.n_features == 2 and data is not None
    fig = _figure(figsize=(15 if boundary else 10, 4), layout="tight")
    axes = fig.subplots(1, 3 if boundary else 2)
    epochs = np.arange(1, history.epochs + 1)
    axes[0].plot(epochs, history.loss, label="train")
    if history.val_loss:
        axes[0].plot(epochs, history.val_loss, label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    for name, values in history.metrics.items():
        axes[1].plot(epochs, values, label=name)
    axes[1].set(xlabel="epoch", title="metrics")
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)
    if boundary and data is not None:  # (data is not None when boundary: said for the type checker)
        plot_decision_boundary(model, *data, ax=axes[2])
    _save(fig, path)
    return fig


def plot_decision_boundary(
    model: Any, X: np.ndarray, y: np.ndarray, ax: Any = None, path: str | os.PathLike | None = None
) -> Any:
    """Shade the class the model predicts over the plane around ``X (m, 2)`` and scatter ``y``;
    draws into ``ax`` if given, else into a new Figure. Returns the Figure; writes it to ``path`` if given."""
    fig = _figure(figsize=(5, 5), layout="tight") if ax is None else ax.figure
    ax = fig.subplots() if ax is None else ax
    X = np.asarray(X)
    lo, hi = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.c_[gx.ravel(), gy.ravel()]
    labels = to_numpy(model.predict(grid)).reshape(gx.shape)
    ax.contourf(gx, gy, labels, alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=np.asarray(y), s=10, cmap="coolwarm", edgecolors="k", linewidths=0.3)
    ax.set(title="decision boundary", xlabel="x0", ylabel="x1")
    _save(fig, path)
    return fig


def _save(fig: Any, path: str | os.PathLike | None) -> None:
    if path is not None:
        with atomic_open(path) as f:
            fig.savefig(f, format=os.path.splitext(os.fspath(path))[1][1:] or "png", dpi=100)
