"""The Tensor and its tape.

Each op applied to tensors that require grad records a `Function` node: its parents and the arrays
its VJP needs. `backward()` sorts the recorded graph topologically (iteratively, so deep graphs do
not hit Python's recursion limit) and calls each node's VJP in reverse order.
"""
import contextlib
import math
import threading

import numpy as np

from . import backend
from .backend import DeviceError

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class no_grad(contextlib.ContextDecorator):
    """Within `with no_grad():` (or a function decorated with it) ops record nothing."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = False

    def __exit__(self, *exc):
        _state.grad_enabled = self._previous
        return False


# Tools that watch every op (a profiler): each gets forward_pre(fn, arrays) and forward_post(fn, arrays)
# around the op's forward, as Chainer's function hooks do. Empty, it costs two loops over nothing.
op_hooks = []


class Function:
    """One recorded op. Subclasses define `forward(*arrays, **options)` and `backward(grad)`,
    which returns one gradient (or None) per tensor input, in order."""

    def __init__(self, parents):
        self.parents = parents
        self.needs_input_grad = tuple(p.requires_grad for p in parents)
        self.saved = ()
        self.freed = False

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors, **options):
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise DeviceError(f"{cls.__name__}: tensors on different devices ({device} and {t.device}); "
                                  "move one with .to(device) first")
        ctx = cls(tensors)
        ctx.options = options  # for tools that show the graph
        arrays = tuple(t.data for t in tensors)
        for hook in op_hooks:
            hook.forward_pre(ctx, arrays)
        out = Tensor._wrap(ctx.forward(*arrays, **options))
        for hook in op_hooks:
            hook.forward_post(ctx, arrays)
        if is_grad_enabled() and any(ctx.needs_input_grad):
            out.requires_grad = True
            out._ctx = ctx
        return out


def _float_dtype(dtype):
    return np.dtype(dtype).kind == "f"


class Tensor:
    """An n-dimensional array on a device, with an optional gradient and the op that made it."""

    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if device is None:
            device = backend.device_of(data) if backend.is_cupy_array(data) else backend.default_device()
        xp = backend.array_module(device)
        if dtype is None and not hasattr(data, "dtype"):
            dtype = np.float32  # Python numbers and lists; arrays keep their own dtype
        if backend.device_of(data) != backend.normalize_device(device):
            data = backend.to_device(data, device)
        self.data = xp.asarray(data, dtype=dtype)
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    @classmethod
    def _wrap(cls, array):
        t = cls.__new__(cls)
        t.data, t.grad, t._ctx, t.requires_grad = array, None, None, False
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not _float_dtype(self.dtype):
            raise TypeError(f"only floating-point tensors can require grad, not {self.dtype}")
        self.requires_grad = requires_grad
        return self

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}, device={self.device!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU when on cuda)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self):
        """The same data, cut from the tape."""
        return Tensor._wrap(self.data)

    def to(self, device):
        """A copy on `device` (the same tensor if it is there already). Like detach, it is not recorded."""
        if backend.normalize_device(device) == self.device:
            return self
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · grad into every leaf's `.grad` that requires grad.

        The arrays the graph saved are freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "expression has requires_grad=True (or it ran under no_grad)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, this tensor has shape "
                                   f"{self.shape}: pass backward(grad) with a gradient of that shape")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {grad.shape}, the tensor {self.shape}")

        grads = {id(self): grad}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None:
                node._accumulate(g)
                continue
            if ctx.freed:
                raise RuntimeError("backward through a graph a second time: its saved arrays were freed by "
                                   "the first backward(); pass backward(retain_graph=True) the first time")
            for parent, pg in zip(ctx.parents, ctx.backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg
            if not retain_graph:
                ctx.saved, ctx.parents, ctx.freed = None, (), True

    def _topological_order(self):
        """Every tensor that requires grad and reaches self, parents before children (iterative DFS)."""
        order, visited = [], {id(self)}
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            stack.append((node, True))
            if node._ctx is not None:
                for parent in node._ctx.parents:
                    if parent.requires_grad and id(parent) not in visited:
                        visited.add(id(parent))
                        stack.append((parent, False))
        return order

    def _accumulate(self, g):
        if self.grad is None:
            # A copy we own: g may be shared with another leaf's gradient or be a read-only view.
            self.grad = g.astype(self.dtype, copy=True)
        else:
            self.grad += g

    def _binary(self, other, op, reverse=False):
        other = other if isinstance(other, Tensor) else self._constant(other)
        return op.apply(other, self) if reverse else op.apply(self, other)

    def _constant(self, value):
        xp = backend.get_array_module(self.data)
        dtype = self.dtype if _float_dtype(self.dtype) else None
        return Tensor._wrap(xp.asarray(value, dtype=dtype))

    def __add__(self, other): return self._binary(other, ops.Add)
    def __radd__(self, other): return self._binary(other, ops.Add, reverse=True)
    def __sub__(self, other): return self._binary(other, ops.Sub)
    def __rsub__(self, other): return self._binary(other, ops.Sub, reverse=True)
    def __mul__(self, other): return self._binary(other, ops.Mul)
    def __rmul__(self, other): return self._binary(other, ops.Mul, reverse=True)
    def __truediv__(self, other): return self._binary(other, ops.Div)
    def __rtruediv__(self, other): return self._binary(other, ops.Div, reverse=True)
    def __matmul__(self, other): return self._binary(other, ops.MatMul)
    def __rmatmul__(self, other): return self._binary(other, ops.MatMul, reverse=True)
    def __neg__(self): return ops.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not np.isscalar(exponent):
            raise TypeError("tensor ** exponent takes a Python number as the exponent")
        return ops.Pow.apply(self, exponent=exponent)

    def _compare(self, other, fn):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(fn(self.data, other))

    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    def __eq__(self, other): return self._compare(other, lambda a, b: a == b)
    def __ne__(self, other): return self._compare(other, lambda a, b: a != b)
    __hash__ = object.__hash__  # tensors are identified by object, as in PyTorch

    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        axes = range(self.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def max(self, axis=None, keepdims=False):
        """The maximum; where several elements tie, the gradient is split evenly among them."""
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None):
        return Tensor._wrap(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=shape)

    def flatten(self, start_dim=0, end_dim=-1):
        start, end = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def transpose(self, *axes):
        """No axes: reverse them. Two axes: swap them (PyTorch). A longer permutation: apply it (NumPy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 2:
            perm = list(range(self.ndim))
            perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
            axes = tuple(perm)
        return ops.Transpose.apply(self, axes=tuple(a % self.ndim for a in axes))

    permute = transpose
    T = property(lambda self: self.transpose())

    def matmul(self, other): return self @ other
    def exp(self): return ops.Exp.apply(self)
    def log(self): return ops.Log.apply(self)
    def relu(self): return ops.ReLU.apply(self)
    def tanh(self): return ops.Tanh.apply(self)
    def sigmoid(self): return ops.Sigmoid.apply(self)


from . import ops  # noqa: E402  (ops subclass Function, defined above)
