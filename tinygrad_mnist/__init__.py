"""tinygrad_mnist: a define-by-run autograd engine on NumPy/CuPy, and MNIST training built on it.

It speaks PyTorch: `import tinygrad_mnist as torch` gives the tensor, its factories, dtypes and
top-level functions under PyTorch's names (docs/FROM_PYTORCH.md lists what differs, and why).
"""
from types import SimpleNamespace

import numpy as np

from .backend import DeviceError, cuda_available, device, manual_seed
from .creation import (arange, as_tensor, empty, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
                       randint, randn, randperm, tensor, zeros, zeros_like)
from .creation import BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor
from .gradcheck import GradcheckError, gradcheck
from .ops import OPS
from .serialization import load, save
from .tensor import (DtypeError, Function, ShapeError, Tensor, cat, concat, concatenate, is_grad_enabled, maximum,
                     minimum, no_grad, stack, toposort, where)
from .creation import empty_like, rand_like, randint_like, randn_like
from .tensor import Size, enable_grad, inference_mode, is_tensor, set_grad_enabled

__version__ = "0.1.0"

float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
float16 = half = np.dtype("float16")
int64 = long = np.dtype("int64")
int32 = int = np.dtype("int32")
int16, int8, uint8 = np.dtype("int16"), np.dtype("int8"), np.dtype("uint8")
bool = np.dtype("bool")


def get_default_dtype():
    """The dtype of floating-point tensors made from Python floats and of the factories: float32."""
    return float32

cuda = SimpleNamespace(is_available=cuda_available, device_count=lambda: 1 if cuda_available() else 0)
accelerator = SimpleNamespace(is_available=cuda_available,
                              current_accelerator=lambda: device("cuda") if cuda_available() else None)


def _function(name):
    def function(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    function.__name__, function.__qualname__ = name, name
    function.__doc__ = f"{name}(input, ...) is input.{name}(...), as in PyTorch."
    return function


# torch.flatten(x, 1), torch.argmax(x, dim=1), torch.max(x, 1), ...: the tensor's methods that PyTorch also has
# as functions, with the method's arguments after `input`.
TENSOR_FUNCTIONS = ("flatten", "reshape", "squeeze", "unsqueeze", "permute", "transpose", "swapaxes", "swapdims", "t",
                    "chunk", "unbind", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "var",
                    "std", "norm", "logsumexp", "softmax", "log_softmax", "any", "all", "matmul", "abs", "sqrt",
                    "rsqrt", "square", "exp", "log", "sin", "cos", "relu", "tanh", "sigmoid", "clamp", "clip", "add",
                    "sub", "mul", "div", "neg", "eq", "ne", "lt", "le", "gt", "ge", "less", "less_equal", "greater",
                    "greater_equal", "not_equal", "equal", "allclose", "is_floating_point", "nonzero", "numel", "clone",
                    "detach")
# The tensor methods added with mm, sort, topk and gather, as functions too: torch.topk(x, 5), torch.mm(a, b).
TENSOR_FUNCTIONS += ("mm", "bmm", "mv", "dot", "outer", "sign", "floor", "ceil", "round", "trunc", "isnan", "isinf",
                     "isfinite", "flip", "tril", "triu", "gather", "scatter", "diag", "trace", "masked_fill", "sort",
                     "argsort", "topk", "cumsum",
                     "log1p", "expm1", "log2", "log10", "erf")
for _name in TENSOR_FUNCTIONS:
    globals()[_name] = _function(_name)
del _name


def pow(input, exponent):
    """input ** exponent, where either may be the tensor (torch.pow(2, x) as well as torch.pow(x, 2))."""
    if not isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        raise TypeError("pow(): input or exponent must be a Tensor")
    return input ** exponent


def split(tensor, split_size_or_sections, dim=0):
    """tensor.split(...), with torch.split's argument names."""
    return tensor.split(split_size_or_sections, dim)


from . import functional, nn, optim, utils  # noqa: E402  (torch.nn, torch.optim, torch.utils.data after `import torch`)
from . import autograd  # noqa: E402  (torch.autograd.grad)

__all__ = ["Tensor", "Function", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError", "OPS", "toposort",
           "DeviceError", "ShapeError", "DtypeError", "cuda_available", "manual_seed", "device", "cuda", "accelerator",
           "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
           "full_like", "arange", "linspace", "eye", "rand", "randn", "randint", "randperm", "cat", "concat",
           "concatenate", "stack", "where", "maximum", "minimum", "save", "load", "float32", "float", "float64",
           "double", "float16", "half", "int64", "long", "int32", "int", "int16", "int8", "uint8", "bool",
           "pow", "split", "FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
           "ByteTensor", "BoolTensor", *TENSOR_FUNCTIONS]
__all__ += ["Size", "is_tensor", "get_default_dtype", "empty_like", "rand_like", "randn_like", "randint_like",
            "set_grad_enabled", "enable_grad", "inference_mode", "autograd"]
