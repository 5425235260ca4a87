"""Train a model: the same as `tinygrad-mnist train ...`."""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
