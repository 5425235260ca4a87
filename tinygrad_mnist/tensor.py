"""The Tensor and its tape.

Each op applied to tensors that require grad records a `Function` node: its parents and the arrays
its VJP needs. `backward()` walks the recorded graph with `toposort` (each tensor after all of its consumers,
iteratively, so deep graphs do not hit Python's recursion limit) and calls each node's VJP once.
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
    which returns one gradient (or None) per tensor input, in order. The op records the version of
    each input and of its output: backward() raises if one of them was modified in place since."""

    view = False  # True where the output is a view of the first input's array (reshape, basic indexing)

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
        arrays = _common_dtype(cls.__name__, tensors)
        for hook in op_hooks:
            hook.forward_pre(ctx, arrays)
        out = Tensor._wrap(ctx.forward(*arrays, **options))
        for hook in op_hooks:
            hook.forward_post(ctx, arrays)
        if ctx.view:  # the output shares the input's memory, so an in-place change to either changes both
            out._version = tensors[0]._version
        if is_grad_enabled() and any(ctx.needs_input_grad) and _float_dtype(out.dtype):
            out.requires_grad = True
            out._ctx = ctx
            ctx.versions = [t._version[0] for t in tensors] + [out._version[0]]
        return out


def _float_dtype(dtype):
    return np.dtype(dtype).kind == "f"


def _common_dtype(op, tensors):
    """The inputs' arrays for one op. Floating-point inputs must share one dtype: a float32 batch
    against float64 weights raises rather than promote silently (the result's dtype, the gradients'
    and the optimizer's would all change). Integer and boolean inputs take the float inputs' dtype,
    as in PyTorch (NumPy would promote int64 · float32 to float64)."""
    if len(tensors) == 1:
        return [tensors[0].array]
    floats = {t.dtype for t in tensors if t.dtype.kind == "f"}
    if len(floats) > 1:
        names = " and ".join(sorted(str(d) for d in floats))
        raise TypeError(f"{op}: inputs of different floating-point dtypes ({names}); no promotion is done: "
                        f"make them one dtype first, e.g. Tensor(x, dtype=np.float32) for every input")
    if not floats:
        return [t.array for t in tensors]
    (dtype,) = floats
    return [t.array if t.dtype == dtype else t.array.astype(dtype) for t in tensors]


def recorded_parents(t):
    """The tensors that the op which made `t` took as inputs (none for a leaf)."""
    return t._ctx.parents if t._ctx is not None else ()


def _differentiable_parents(t):
    return tuple(p for p in t._ctx.parents if p.requires_grad) if t._ctx is not None else ()


def toposort(root, parents=recorded_parents):
    """Every tensor that reaches `root` through the tape, as a list: `root` first, and each tensor only
    after every tensor in the list that consumes it. This is the order in which backward() runs the VJPs,
    and the one walk of the graph that every tool (drawing it, collecting feature maps) reuses.

    Why it is right: Kahn's algorithm on the reversed graph. A first pass counts, for every tensor, the
    edges that reach it from its consumers (x * x counts twice); the second pass hands a tensor out only
    when the last of those edges has been taken, that is, after all of its consumers. A tensor that feeds
    several ops at different depths (x + f(x), a weight used twice) therefore comes out once, after all
    of them, and its gradient is complete when its own VJP runs. Both passes are loops over an explicit
    stack: a chain of 100,000 ops needs no recursion. `parents(t)` says which edges to follow: every
    recorded one by default, only those into tensors that require grad for backward().
    """
    consumers, stack = {id(root): 0}, [root]
    while stack:
        for parent in parents(stack.pop()):
            if id(parent) in consumers:
                consumers[id(parent)] += 1
            else:
                consumers[id(parent)] = 1
                stack.append(parent)
    order, ready = [], [root]
    while ready:
        t = ready.pop()
        order.append(t)
        for parent in parents(t):
            consumers[id(parent)] -= 1
            if consumers[id(parent)] == 0:
                ready.append(parent)
    return order


def _check_versions(ctx, out):
    """Raise if an input or the output of a recorded op was modified in place after the op ran: the op
    may have saved that array for its VJP, which would then be silently wrong. (PyTorch raises only
    for the tensors an op saved; this checks every input, a superset.)"""
    now = [t._version[0] for t in ctx.parents] + [out._version[0]]
    if now == ctx.versions:
        return
    i = next(k for k, (a, b) in enumerate(zip(now, ctx.versions)) if a != b)
    what = "its output" if i == len(ctx.parents) else f"input {i}"
    shape = out.shape if i == len(ctx.parents) else ctx.parents[i].shape
    raise RuntimeError(f"one of the tensors needed for gradient computation has been modified by an in-place "
                       f"operation: {what} of {type(ctx).__name__} (shape {shape}) is at version {now[i]}, the op "
                       f"recorded version {ctx.versions[i]}. Change a copy (x.clone()) or make the change before "
                       f"the forward pass")


def _checked_vjp(ctx, g):
    """ctx's VJP at g, checked as the tape receives it: one gradient (or None) per input, each with its
    input's shape and dtype. A VJP that breaks this is a bug in that op; without the check zip() would
    drop the extra gradients and broadcasting would smear a wrong shape into .grad."""
    grads = ctx.backward(g)
    op = type(ctx).__name__
    if not isinstance(grads, (tuple, list)) or len(grads) != len(ctx.parents):
        got = f"{len(grads)} gradients" if isinstance(grads, (tuple, list)) else f"a {type(grads).__name__}"
        raise RuntimeError(f"{op}.backward returned {got} for its {len(ctx.parents)} inputs: it must return "
                           "a tuple with one gradient (or None) per input, in order")
    for i, (parent, pg) in enumerate(zip(ctx.parents, grads)):
        if pg is None or not parent.requires_grad:
            continue
        shape, dtype = getattr(pg, "shape", None), getattr(pg, "dtype", None)
        if shape != parent.shape:
            raise RuntimeError(f"{op}.backward: the gradient of input {i} has shape {shape}, but the input has "
                               f"shape {parent.shape}")
        if dtype != parent.dtype:
            raise RuntimeError(f"{op}.backward: the gradient of input {i} is {dtype}, but the input is "
                               f"{parent.dtype}")
    return grads


def _dtype_of_python(data):
    """torch.tensor's rule for Python data: floats become float32, ints int64, bools bool."""
    kind = np.asarray(data).dtype.kind
    if kind in "fc":
        return np.float32
    if kind in "iu":
        return np.int64
    if kind == "b":
        return np.bool_
    raise TypeError(f"cannot make a tensor of {type(data).__name__} data: give numbers, nested lists of "
                    f"numbers or an array")


def _dims(dim, axis, name="dim"):
    """One axis argument from PyTorch's `dim` or NumPy's `axis` (kept as an alias), lists as tuples."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"give {name}= or axis=, not both")
        dim = axis
    return tuple(dim) if isinstance(dim, list) else dim


def _keep(keepdim, keepdims):
    return bool(keepdim if keepdims is None else keepdims)


def _shape_args(shape):
    """reshape(2, 3) and reshape((2, 3)) alike, as PyTorch takes both."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _index_key(key, xp):
    """An index with its Tensors and lists turned into arrays on the indexed tensor's device."""
    def one(k):
        if isinstance(k, Tensor):
            k = k.array
        if isinstance(k, list) or (hasattr(k, "dtype") and getattr(k, "ndim", 0) > 0):
            k = xp.asarray(k)
            if k.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer or boolean, got {k.dtype}")
        return k
    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


class Tensor:
    """An n-dimensional array on a device, with an optional gradient and the op that made it."""

    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.array
        if device is None:
            device = backend.device_of(data) if backend.is_cupy_array(data) else backend.default_device()
        xp = backend.array_module(device)
        if dtype is None and not hasattr(data, "dtype"):
            dtype = _dtype_of_python(data)  # Python numbers and lists; arrays keep their own dtype
        if backend.device_of(data) != backend.normalize_device(device):
            data = backend.to_device(data, device)
        self.array = xp.asarray(data, dtype=dtype)
        self._grad = None
        self._ctx = None
        self._version = [0]  # bumped by every in-place change; shared by views of the same memory
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    @classmethod
    def _wrap(cls, array):
        t = cls.__new__(cls)
        t.array, t._grad, t._ctx, t.requires_grad, t._version = array, None, None, False, [0]
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not _float_dtype(self.dtype):
            raise TypeError(f"only floating-point tensors can require grad, not {self.dtype}")
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("requires_grad_(False) on a tensor made by a recorded op: use .detach() instead")
        self.requires_grad = requires_grad
        return self

    shape = property(lambda self: self.array.shape)
    ndim = property(lambda self: self.array.ndim)
    dtype = property(lambda self: self.array.dtype)
    device = property(lambda self: backend.device_of(self.array))
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx, doc="The recorded op that made this tensor (None for a leaf).")
    is_cuda = property(lambda self: self.device == "cuda")
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))

    @property
    def grad(self):
        """The gradient backward() accumulated: a Tensor of this tensor's shape, dtype and device, or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}: "
                                f"wrap it, p.grad = Tensor(array)")
            if value.shape != self.shape or value.dtype != self.dtype or value.device != self.device:
                raise RuntimeError(f"assigned grad is {value.dtype} {value.shape} on {value.device}, the tensor "
                                   f"{self.dtype} {self.shape} on {self.device}: they must match")
        self._grad = value

    def size(self, dim=None):
        """The shape (a tuple), or with `dim` the length of that axis (PyTorch's meaning, not NumPy's)."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    def numel(self):
        return int(self.array.size)

    def element_size(self):
        return self.dtype.itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.array)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.array)!r}, device={self.device!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU when on cuda)."""
        return backend.to_numpy(self.array)

    def __array__(self, dtype=None, copy=None):
        if self.device != "cpu":
            raise TypeError("a cuda tensor does not convert to NumPy implicitly: call .numpy() (which copies "
                            "it to the host) or .cpu() first")
        return np.asarray(self.array, dtype=dtype)  # a NumPy scalar (0-d results of some ops) becomes an array

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.array.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.array).tolist()

    def _one_value(self, what):
        if self.array.size != 1:
            raise RuntimeError(f"{what} of a tensor with {self.array.size} elements (shape {self.shape}) is "
                               f"ambiguous: it needs exactly one; reduce it first (.any(), .all(), .sum())")
        return self.array.reshape(()).item()

    def __bool__(self): return bool(self._one_value("the truth value"))
    def __float__(self): return float(self._one_value("float()"))
    def __int__(self): return int(self._one_value("int()"))

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of one element can be used as an index, not {self.dtype}")
        return int(self._one_value("an index"))

    def __format__(self, spec):
        if self.array.size == 1 and spec:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        """Basic and advanced indexing, with NumPy's (and PyTorch's) rules; recorded, so x[rows, labels]
        is differentiable."""
        return ops.Index.apply(self, key=_index_key(key, backend.get_array_module(self.array)))

    def __setitem__(self, key, value):
        self._check_inplace("item assignment", value)
        self.array[_index_key(key, backend.get_array_module(self.array))] = value.array if isinstance(value, Tensor) \
            else value
        self._version[0] += 1

    def detach(self):
        """The same data, cut from the tape (an in-place change to one shows in the other)."""
        t = Tensor._wrap(self.array)
        t._version = self._version
        return t

    def clone(self):
        """A copy of the data, recorded (the gradient passes through unchanged)."""
        return ops.Cast.apply(self, dtype=self.dtype)

    def contiguous(self):
        """The tensor itself: NumPy and CuPy handle any memory layout, and ops copy where it pays."""
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False):
        """`to(device)`, `to(dtype)`, `to(device, dtype)` or `to(other)`: a tensor on that device with that
        dtype (this one when nothing changes). A device move is not recorded (like detach); a dtype
        change is. `non_blocking` is accepted and has no effect (copies are synchronous)."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str):
                device = a
            else:
                dtype = a
        t = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            t = ops.Cast.apply(t, dtype=np.dtype(dtype))
        if device is not None and backend.normalize_device(device) != t.device:
            t = Tensor(backend.to_device(t.array, device), requires_grad=t.requires_grad)
        return t

    def cpu(self): return self.to("cpu")
    def cuda(self): return self.to("cuda")
    def float(self): return self.to(np.float32)
    def double(self): return self.to(np.float64)
    def half(self): return self.to(np.float16)
    def long(self): return self.to(np.int64)
    def int(self): return self.to(np.int32)
    def bool(self): return self.to(np.bool_)

    def type(self, dtype=None):
        """With no argument, the dtype's name; else the tensor in that dtype."""
        return str(self.dtype) if dtype is None else self.to(dtype)

    def is_floating_point(self):
        return _float_dtype(self.dtype)

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad` that requires grad.

        The arrays the graph saved are freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "expression has requires_grad=True (or it ran under no_grad)")
        xp = backend.get_array_module(self.array)
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, this tensor has shape "
                                   f"{self.shape}: pass backward(gradient) with a gradient of that shape")
            gradient = xp.ones_like(self.array)
        else:
            gradient = gradient.array if isinstance(gradient, Tensor) else xp.asarray(gradient, dtype=self.dtype)
            if gradient.shape != self.shape:
                raise ValueError(f"backward(gradient): it has shape {gradient.shape}, the tensor {self.shape}")

        grads = {id(self): gradient}
        for node in toposort(self, parents=_differentiable_parents):
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
            _check_versions(ctx, node)
            for parent, pg in zip(ctx.parents, _checked_vjp(ctx, g)):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg
            if not retain_graph:
                ctx.saved, ctx.parents, ctx.freed = None, (), True

    def _accumulate(self, g):
        if self._grad is None:
            # A copy we own: g may be shared with another leaf's gradient or be a read-only view.
            self._grad = Tensor._wrap(g.astype(self.dtype, copy=True))
        else:
            self._grad.array += g
            self._grad._version[0] += 1

    def _binary(self, other, op, reverse=False):
        other = other if isinstance(other, Tensor) else self._constant(other)
        return op.apply(other, self) if reverse else op.apply(self, other)

    def _constant(self, value):
        """A Python number (or array) as a tensor to combine with this one: in this tensor's dtype when
        it is floating point; a Python float against an integer tensor gives float32, as in PyTorch."""
        xp = backend.get_array_module(self.array)
        if _float_dtype(self.dtype):
            return Tensor._wrap(xp.asarray(value, dtype=self.dtype))
        if isinstance(value, float):
            return Tensor._wrap(xp.asarray(value, dtype=np.float32))
        return Tensor._wrap(xp.asarray(value))

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
    def __pos__(self): return self

    def __pow__(self, exponent):
        if not isinstance(exponent, Tensor) and not np.isscalar(exponent):
            raise TypeError("tensor ** exponent takes a Python number or a Tensor as the exponent")
        return self._binary(exponent, ops.Pow)

    def __rpow__(self, base):
        return self._constant(base) ** self

    def _no_grad_math(self, other, fn, name):
        """Integer-valued arithmetic (//, %) that has no gradient: refused on tensors that need one."""
        other = other.array if isinstance(other, Tensor) else other
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(f"{name} is not differentiable: apply it to a tensor that needs no grad "
                               "(x.detach()) or under no_grad()")
        return Tensor._wrap(fn(self.array, other))

    def __floordiv__(self, other): return self._no_grad_math(other, lambda a, b: a // b, "//")
    def __rfloordiv__(self, other): return self._no_grad_math(other, lambda a, b: b // a, "//")
    def __mod__(self, other): return self._no_grad_math(other, lambda a, b: a % b, "%")
    def __rmod__(self, other): return self._no_grad_math(other, lambda a, b: b % a, "%")

    def _compare(self, other, fn):
        other = other.array if isinstance(other, Tensor) else other
        return Tensor._wrap(fn(self.array, other))

    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    def __eq__(self, other): return self._compare(other, lambda a, b: a == b)
    def __ne__(self, other): return self._compare(other, lambda a, b: a != b)
    def __invert__(self): return Tensor._wrap(~self.array)
    def __and__(self, other): return self._compare(other, lambda a, b: a & b)
    def __or__(self, other): return self._compare(other, lambda a, b: a | b)
    def __xor__(self, other): return self._compare(other, lambda a, b: a ^ b)
    __hash__ = object.__hash__  # tensors are identified by object, as in PyTorch
    lt, le, gt, ge, eq, ne = __lt__, __le__, __gt__, __ge__, __eq__, __ne__
    less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne

    def equal(self, other):
        """True when both have the same shape and elements (a Python bool, as torch.equal)."""
        return self.shape == other.shape and bool((self.array == other.array).all())

    def allclose(self, other, rtol=1e-05, atol=1e-08):
        xp = backend.get_array_module(self.array)
        return bool(xp.allclose(self.array, other.array if isinstance(other, Tensor) else other, rtol, atol))

    def any(self, dim=None, keepdim=False):
        return Tensor._wrap(self.array.any(axis=dim, keepdims=keepdim))

    def all(self, dim=None, keepdim=False):
        return Tensor._wrap(self.array.all(axis=dim, keepdims=keepdim))

    def sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
        t = self if dtype is None else self.to(dtype)
        return ops.Sum.apply(t, axis=_dims(dim, axis), keepdims=_keep(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        axis = _dims(dim, axis)
        axes = range(self.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(axis=axis, keepdims=_keep(keepdim, keepdims)) * (1.0 / count)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """With no dim, the maximum; with an int dim, (values, indices) along it, as PyTorch; with a
        tensor, the elementwise maximum. Where several elements tie, the gradient is split evenly
        among them."""
        if isinstance(dim, Tensor):
            return maximum(self, dim)
        axis, keep = _dims(dim, axis), _keep(keepdim, keepdims)
        values = ops.Max.apply(self, axis=axis, keepdims=keep)
        if dim is None or isinstance(axis, tuple):  # axis= (the NumPy spelling) and tuples give values alone
            return values
        return MinMax(values, self.argmax(axis, keep))

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """As max: the minimum, (values, indices) with a dim, or the elementwise minimum with a tensor."""
        if isinstance(dim, Tensor):
            return minimum(self, dim)
        axis, keep = _dims(dim, axis), _keep(keepdim, keepdims)
        values = -ops.Max.apply(-self, axis=axis, keepdims=keep)
        if dim is None or isinstance(axis, tuple):
            return values
        return MinMax(values, self.argmin(axis, keep))

    def amax(self, dim=None, keepdim=False):
        return ops.Max.apply(self, axis=_dims(dim, None), keepdims=keepdim)

    def amin(self, dim=None, keepdim=False):
        return -(-self).amax(dim, keepdim)

    def _arg(self, method, dim, keepdim):
        index = getattr(self.array, method)(axis=dim)
        if keepdim:
            xp = backend.get_array_module(self.array)
            index = xp.expand_dims(index, dim) if dim is not None else index.reshape((1,) * self.ndim)
        return Tensor._wrap(index)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return self._arg("argmax", _dims(dim, axis), keepdim)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return self._arg("argmin", _dims(dim, axis), keepdim)

    def reshape(self, *shape):
        return ops.Reshape.apply(self, shape=_shape_args(shape))

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        """Drop axes of length 1: all of them, or those of `dim` (an int or tuple) that have length 1."""
        if dim is None:
            dims = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            dims = {d % max(self.ndim, 1) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
            dims = {d for d in dims if self.ndim and self.shape[d] == 1}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in dims))

    def expand(self, *sizes):
        """A broadcast view to `sizes` (-1 keeps an axis); the gradient sums over the stretched axes."""
        sizes = _shape_args(sizes)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise RuntimeError(f"expand: {len(sizes)} sizes for a tensor with {self.ndim} dimensions")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
        return ops.Expand.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def permute(self, *dims):
        """The axes in the order `dims` (a permutation of all of them)."""
        dims = _shape_args(dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dimensions")
        return ops.Transpose.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, *axes):
        """Two axes: swap them (PyTorch). No axes: reverse them, a longer permutation: apply it (NumPy,
        kept from before; `permute` is the PyTorch name for that)."""
        axes = _shape_args(axes)
        if len(axes) != 2:
            return self.permute(*(axes or reversed(range(self.ndim))))
        perm = list(range(self.ndim))
        perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
        return self.permute(*perm)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with at most 2 dimensions, this one has {self.ndim}")
        return self.transpose()

    swapaxes = swapdims = transpose

    def split(self, split_size_or_sections, dim=0):
        """Pieces of `split_size` along `dim` (the last one smaller), or of the given list of sizes."""
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections < 1:
                raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dimension {dim} has {n}")
        where, starts = [slice(None)] * (dim % self.ndim), np.cumsum([0] + sizes)
        return tuple(self[(*where, slice(int(a), int(b)))] for a, b in zip(starts[:-1], starts[1:]))

    def chunk(self, chunks, dim=0):
        """At most `chunks` pieces of equal size ⌈n / chunks⌉ along `dim` (the last one smaller)."""
        return self.split(max(1, -(-self.shape[dim] // chunks)), dim)

    def unbind(self, dim=0):
        return tuple(t.squeeze(dim) for t in self.split(1, dim))

    def matmul(self, other): return self @ other
    def exp(self): return ops.Exp.apply(self)
    def log(self): return ops.Log.apply(self)
    def relu(self): return ops.ReLU.apply(self)
    def tanh(self): return ops.Tanh.apply(self)
    def sigmoid(self): return ops.Sigmoid.apply(self)
    def pow(self, exponent): return self ** exponent
    def add(self, other, alpha=1): return self + (other if alpha == 1 else other * alpha)
    def sub(self, other, alpha=1): return self - (other if alpha == 1 else other * alpha)
    def mul(self, other): return self * other
    def div(self, other): return self / other
    def neg(self): return -self

    def sqrt(self): return self ** 0.5
    def rsqrt(self): return self ** -0.5
    def square(self): return self * self
    def sin(self): return ops.Sin.apply(self)
    def cos(self): return ops.Cos.apply(self)
    def maximum(self, other): return maximum(self, other)
    def minimum(self, other): return minimum(self, other)

    def abs(self):
        """|x| as x · sign(x): the gradient is sign(x), 0 at 0 (as PyTorch)."""
        return self * Tensor._wrap(backend.get_array_module(self.array).sign(self.array))

    def clamp(self, min=None, max=None):
        """x limited to [min, max] (numbers or tensors); the gradient passes where min <= x <= max, and
        to a tensor bound where it was chosen."""
        if min is None and max is None:
            raise ValueError("clamp: give min, max or both")
        out = self
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out

    clip = clamp

    def prod(self, dim=None, keepdim=False):
        if isinstance(dim, (tuple, list)):
            raise TypeError("prod: dim must be one int (or None for all elements), as in PyTorch")
        return ops.Prod.apply(self, axis=dim, keepdims=keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Σ (x - mean)² / (n - correction), with correction 1 (Bessel's) unless unbiased=False or given."""
        axis, keep = _dims(dim, axis), _keep(keepdim, keepdims)
        if correction is None:
            correction = 0 if unbiased is False else 1
        axes = range(self.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        count = math.prod(self.shape[a] for a in axes)
        d = self - self.mean(axis=axis, keepdims=True)
        scale = 1.0 / (count - correction) if count > correction else float("nan")  # PyTorch's nan, no error
        return (d * d).sum(axis=axis, keepdims=keep) * scale

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm (2, 1, inf or any positive p; 'fro' is 2) over all elements or `dim`."""
        if p == "fro":
            p = 2
        if p == 2:
            return (self * self).sum(dim, keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == math.inf:
            return self.abs().amax(dim, keepdim)
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    def logsumexp(self, dim, keepdim=False):
        """log Σ eˣ along dim, shifted by the (constant) maximum so no exponential overflows."""
        top = Tensor._wrap(self.array.max(axis=dim, keepdims=True))
        out = (self - top).exp().sum(dim, keepdim=True).log() + top
        return out if keepdim else out.squeeze(dim)

    def softmax(self, dim=-1):
        return self.log_softmax(dim).exp()

    def log_softmax(self, dim=-1):
        return ops.LogSoftmax.apply(self, axis=dim)

    def _check_inplace(self, name, *others):
        """PyTorch's rules for changing a tensor's data in place while the tape records."""
        if not is_grad_enabled():
            return
        if self.requires_grad and self.is_leaf:
            raise RuntimeError(f"{name}: a leaf tensor that requires grad is being used in an in-place operation; "
                               f"do it under `with no_grad():` (as an optimizer step does)")
        if self.requires_grad:
            raise RuntimeError(f"{name}: in-place change of a tensor that the tape recorded; the engine does not "
                               f"rewrite the tape: write x = x + y (a new tensor) instead")
        if any(isinstance(o, Tensor) and o.requires_grad for o in others):
            raise RuntimeError(f"{name}: the other operand requires grad, and an in-place change is not recorded: "
                               f"write x = x + y (a new tensor) instead")

    def _inplace(self, name, ufunc, other=None):
        self._check_inplace(name, other)
        xp = backend.get_array_module(self.array)
        other = other.array if isinstance(other, Tensor) else other
        try:
            getattr(xp, ufunc)(self.array, other, out=self.array, casting="same_kind")
        except TypeError as e:  # NumPy's UFuncTypeError is a TypeError
            raise RuntimeError(f"{name}: the result cannot be stored in this {self.dtype} tensor ({e})") from None
        self._version[0] += 1
        return self

    def __iadd__(self, other): return self._inplace("+=", "add", other)
    def __isub__(self, other): return self._inplace("-=", "subtract", other)
    def __imul__(self, other): return self._inplace("*=", "multiply", other)
    def __itruediv__(self, other): return self._inplace("/=", "true_divide", other)

    def add_(self, other, alpha=1): return self._inplace("add_", "add", other if alpha == 1 else other * alpha)
    def sub_(self, other, alpha=1): return self._inplace("sub_", "subtract", other if alpha == 1 else other * alpha)
    def mul_(self, other): return self._inplace("mul_", "multiply", other)
    def div_(self, other): return self._inplace("div_", "true_divide", other)

    def copy_(self, src):
        self._check_inplace("copy_", src)
        self.array[...] = backend.to_device(src.array if isinstance(src, Tensor) else src, self.device)
        self._version[0] += 1
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.array.fill(value.item() if isinstance(value, Tensor) else value)
        self._version[0] += 1
        return self

    def zero_(self):
        return self.fill_(0)


class MinMax(tuple):
    """(values, indices) as max(dim) and min(dim) return them, with both names, as in PyTorch."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


def maximum(a, b):
    """The elementwise maximum; where a and b tie, the gradient is split evenly between them."""
    return ops.Maximum.apply(*_tensors(a, b))


def minimum(a, b):
    a, b = _tensors(a, b)
    return -ops.Maximum.apply(-a, -b)


def where(condition, input, other):
    """input where condition holds, else other (either may be a number);  the gradient flows to the
    side that was chosen."""
    input, other = _tensors(input, other)
    cond = condition.array if isinstance(condition, Tensor) else condition
    return ops.Where.apply(input, other, condition=backend.get_array_module(input.array).asarray(cond, dtype=bool))


def cat(tensors, dim=0):
    """The tensors joined along an existing axis `dim`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    return ops.Cat.apply(*tensors, axis=dim)


concatenate = concat = cat


def stack(tensors, dim=0):
    """The tensors (all of one shape) joined along a new axis `dim`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: expects tensors of one shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def _tensors(a, b):
    if not isinstance(a, Tensor):
        return b._constant(a), b
    return a, (b if isinstance(b, Tensor) else a._constant(b))


from . import ops  # noqa: E402  (ops subclass Function, defined above)
