"""anybackprop: fully-connected networks with hand-derived backpropagation, written once against
the Python array API standard; NumPy on the CPU, CuPy on the GPU, chosen by ANYBACKPROP_BACKEND."""

from .activations import ACTIVATIONS, Activation, get_activation, leaky_relu_activation
from .backend import (
    Backend,
    asarray,
    available_backends,
    get_backend,
    set_backend,
    to_numpy,
    use_backend,
)
from .gradcheck import gradcheck, numerical_grads
from .io import load, save
from .losses import LOSSES, Loss, get_loss
from .network import MLP

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Backend",
    "LOSSES",
    "Loss",
    "MLP",
    "asarray",
    "available_backends",
    "get_activation",
    "get_backend",
    "get_loss",
    "gradcheck",
    "leaky_relu_activation",
    "load",
    "numerical_grads",
    "save",
    "set_backend",
    "to_numpy",
    "use_backend",
]
