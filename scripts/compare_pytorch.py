"""Train a model and its PyTorch twin side by side: the losses of the first steps must agree in float64,
then both train in full and their test metrics are tabled.

    python scripts/compare_pytorch.py --model lenet5 --steps 100 --skip-full
"""
import sys

from tinygrad_mnist.torch_twin import main

sys.exit(main())
