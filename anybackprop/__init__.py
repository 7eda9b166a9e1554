"""anybackprop: fully-connected networks with hand-derived backpropagation, written once against
the Python array API standard; NumPy on the CPU, CuPy on the GPU, chosen by ANYBACKPROP_BACKEND."""

from . import _launch

_launch.limit_blas_threads()  # under mpiexec/srun, before NumPy loads its BLAS: threads = cores per process

from . import datasets, distributed, layers, tables
from ._version import __version__
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
from .callbacks import Callback, Checkpoint, CSVLogger, EarlyStopping
from .gradcheck import gradcheck, numerical_grads
from .heads import HEADS, Head, get_head
from .history import History
from .io import load, save
from .layers import ActivationLayer, BatchNorm, Dense, Dropout, Layer, LayerBase, LayerNorm, Standardize, register_layer
from .losses import LOSSES, Loss, get_loss
from .network import MLP, Sequential
from .onnx_export import export_onnx
from .optim import OPTIMIZERS, get_optimizer
from .tables import TabularModel

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "LOSSES",
    "MLP",
    "OPTIMIZERS",
    "Activation",
    "ActivationLayer",
    "Backend",
    "BatchNorm",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Head",
    "History",
    "Layer",
    "LayerBase",
    "LayerNorm",
    "Loss",
    "Sequential",
    "Standardize",
    "TabularModel",
    "__version__",
    "asarray",
    "available_backends",
    "datasets",
    "export_onnx",
    "get_activation",
    "get_backend",
    "get_head",
    "get_loss",
    "get_optimizer",
    "gradcheck",
    "layers",
    "leaky_relu_activation",
    "load",
    "numerical_grads",
    "register_layer",
    "save",
    "set_backend",
    "tables",
    "to_numpy",
    "use_backend",
]
