"""Benchmarks for minigrad and the Transformer: per-op overhead, kernels and
training steps, side by side with PyTorch when it is installed.  Run ``python -m
benchmarks``; see benchmarks/README.md.  Never part of the unit tests."""
