"""Benchmark the engine against PyTorch: the same as `tinygrad-mnist benchmark ...`."""
import sys

from tinygrad_mnist.benchmark import main

sys.exit(main(prog="scripts/benchmark.py"))
