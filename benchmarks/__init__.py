"""Benchmarks of ugcodec: rate–distortion, machine analytics, speed and capacity.

Run them from the repository root as modules, e.g. ``python -m benchmarks.rd --help``;
their reports go to ``benchmarks/results/`` and ``benchmarks/README.md`` explains them.
"""
