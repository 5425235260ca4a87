"""tinygrad_mnist: a define-by-run autograd engine on NumPy/CuPy, and MNIST training built on it."""
from .backend import DeviceError, cuda_available, manual_seed
from .gradcheck import GradcheckError, gradcheck
from .ops import OPS
from .tensor import Function, Tensor, is_grad_enabled, no_grad, toposort

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError", "OPS", "toposort",
           "DeviceError", "cuda_available", "manual_seed"]
