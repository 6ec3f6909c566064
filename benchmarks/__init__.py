"""Benchmark suite of frcnn_fast: NumPy reference vs C++ CPU kernels vs CUDA kernels vs torchvision.

Run ``python -m benchmarks --help`` from the repository root (``make bench`` runs the defaults).
Each op family declares its cases in ``benchmarks/ops/<family>.py`` and registers them with
``benchmarks.registry.register``; a new op (NMS, RoIAlign, ...) is one new file there.
"""
