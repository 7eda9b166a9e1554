"""The array-library adapters, one module per library: :mod:`~anybackprop.backends.base` (the
:class:`~anybackprop.backends.base.Adapter` base and the errors a library gives when it cannot be
used), :mod:`~anybackprop.backends.numpy` (NumPy and its two test-only variants),
:mod:`~anybackprop.backends.array_api_strict`, :mod:`~anybackprop.backends.cupy`,
:mod:`~anybackprop.backends.torch` and :mod:`~anybackprop.backends.jax`. The package sits below
:mod:`anybackprop.backend`, which lists the adapters in ``ADAPTERS``, and imports nothing above it:
adding a library is adding one module here and one entry there.
"""
