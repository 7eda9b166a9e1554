"""anybackprop's speed benchmarks: ``python -m benchmarks --help``."""
