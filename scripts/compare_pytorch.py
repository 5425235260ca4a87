"""Train a model and its PyTorch twin side by side: the same as `tinygrad-mnist compare ...`. The losses
of the first steps must agree in float64; then both train in full and their test metrics are tabled.

    python scripts/compare_pytorch.py --model lenet5 --steps 100 --skip-full
"""
import sys

from tinygrad_mnist.cli import main

sys.exit(main(["compare", *sys.argv[1:]]))
