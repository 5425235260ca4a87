"""PyTorch-shaped utilities: `tinygrad_mnist.utils.data` as `torch.utils.data`."""
from . import data

__all__ = ["data"]
