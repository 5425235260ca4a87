"""Plots and an HTML page for runs: the same as `tinygrad-mnist report RUN_DIR...`."""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["report", *sys.argv[1:]]))
