"""Benchmark the engine against PyTorch: the same as `tinygrad-mnist benchmark ...`."""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["benchmark", *sys.argv[1:]]))
