"""Test-set metrics of a run or checkpoint: the same as `tinygrad-mnist evaluate ...`."""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
