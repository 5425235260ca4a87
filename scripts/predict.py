"""Classify digits in images: the same as `tinygrad-mnist predict CHECKPOINT IMAGE...`."""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["predict", *sys.argv[1:]]))
