"""The package version, in one place (``anybackprop.__version__``, model files)."""

__version__ = "0.1.0"
