"""Tensor factories with PyTorch's names and defaults: float32 unless the data or `dtype` says otherwise.

Random tensors draw from the CPU generator that `manual_seed` reseeds, then move to their device, so a
seed gives the same numbers on every device.
"""
import numpy as np

from . import backend
from .tensor import Tensor, _dtype_of_python, _legacy_sizes, _shape_args


def _make(array, dtype, device, requires_grad):
    return Tensor(array, dtype=dtype, device=device, requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (Python floats become float32, ints int64, as torch.tensor)."""
    data = data.array if isinstance(data, Tensor) else data
    data = backend.to_numpy(data).copy() if hasattr(data, "dtype") else data
    return _make(data, dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """A tensor sharing `data`'s memory where it can (same dtype and device), as torch.as_tensor."""
    return data if isinstance(data, Tensor) and dtype is None and device is None else Tensor(data, dtype=dtype,
                                                                                              device=device)


def from_numpy(array):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a NumPy array, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape_args(size), dtype or np.float32), None, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape_args(size), dtype or np.float32), None, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """`size` filled with `fill_value`; the dtype follows the value (float32, int64 or bool) unless given."""
    return _make(np.full(_shape_args((size,)), fill_value, dtype or _dtype_of_python(fill_value)), None, device,
                 requires_grad)


def _like(name, fill):
    def like(input, dtype=None, device=None, requires_grad=False):
        return full(input.shape, fill, dtype=dtype or input.dtype, device=device or input.device,
                    requires_grad=requires_grad)
    like.__name__, like.__doc__ = name, f"A tensor of {fill}s with input's shape, dtype and device."
    return like


zeros_like = _like("zeros_like", 0)
ones_like = _like("ones_like", 1)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """[start, end) every `step`; int64 when all three are integers, else float32 (torch.arange's rule)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else np.float32
    return _make(np.arange(start, end, step, dtype=dtype), None, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(np.linspace(start, end, steps, dtype=dtype or np.float32), None, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m, dtype=dtype or np.float32), None, device, requires_grad)


def _random(draw, size, dtype, device, requires_grad):
    values = draw(backend.generator("cpu"), _shape_args(size))
    return _make(values.astype(dtype or np.float32), None, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    return _random(lambda rng, shape: rng.random(shape), size, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    return _random(lambda rng, shape: rng.standard_normal(shape), size, dtype, device, requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None):
    """Integers in [low, high) (int64), as torch.randint(low=0, high, size)."""
    if size is None:
        low, high, size = 0, low, high
    values = backend.generator("cpu").integers(low, high, size=_shape_args((size,)))
    return Tensor(values.astype(dtype or np.int64), device=device)


def randperm(n, dtype=None, device=None):
    return Tensor(backend.generator("cpu").permutation(n).astype(dtype or np.int64), device=device)


def _legacy(name, dtype):
    """PyTorch's typed legacy constructors: `FloatTensor([1, 2])` holds the data in that dtype, and
    `FloatTensor(2, 3)` (ints only, one or several) is a tensor of that shape (zeros here)."""
    def make(*data, device=None):
        if len(data) == 1 and not (isinstance(data[0], (int, np.integer)) and not isinstance(data[0], bool)):
            if isinstance(data[0], Tensor) and data[0].dtype != dtype:
                raise TypeError(f"{name}(t): t is {data[0].dtype}, not {np.dtype(dtype)}: convert it with "
                                f"t.to({np.dtype(dtype).name}) instead, as PyTorch requires")
            return tensor(data[0], dtype=dtype, device=device)
        return Tensor(_legacy_sizes(data, dtype), device=device)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = _legacy.__doc__.replace("FloatTensor", name).replace("that dtype", np.dtype(dtype).name)
    return make


FloatTensor = _legacy("FloatTensor", np.float32)
DoubleTensor = _legacy("DoubleTensor", np.float64)
HalfTensor = _legacy("HalfTensor", np.float16)
LongTensor = _legacy("LongTensor", np.int64)
IntTensor = _legacy("IntTensor", np.int32)
ByteTensor = _legacy("ByteTensor", np.uint8)
BoolTensor = _legacy("BoolTensor", np.bool_)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    """A tensor with input's shape, dtype and device: uninitialised in PyTorch, zeros here."""
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def _random_like(name, input, draw, dtype, device, requires_grad):
    dtype = np.dtype(dtype or input.dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name}: random floats need a floating-point dtype and the input is {dtype}: pass "
                        f"dtype=torch.float32")
    return _random(draw, input.shape, dtype, device or input.device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1), with input's shape, dtype and device, from the generator manual_seed reseeds."""
    return _random_like("rand_like", input, lambda rng, shape: rng.random(shape), dtype, device, requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    """Standard normal, with input's shape, dtype and device, from the generator manual_seed reseeds."""
    return _random_like("randn_like", input, lambda rng, shape: rng.standard_normal(shape), dtype, device,
                        requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False):
    """Integers in [low, high) with input's shape, in input's dtype (a float input gives whole floats) unless
    `dtype` says otherwise: randint_like(x, high) or randint_like(x, low, high), as in PyTorch."""
    if high is None:
        low, high = 0, low
    values = backend.generator("cpu").integers(low, high, size=tuple(input.shape))
    return _make(values.astype(dtype or input.dtype), None, device or input.device, requires_grad)
