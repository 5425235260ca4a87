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


class ShapeError(ValueError, RuntimeError):
    """Shapes that do not fit (a reshape, a product, broadcasting, `item()` of many elements), and NumPy's
    other refusals within an op (integers to negative powers). NumPy raises a ValueError there and
    PyTorch a RuntimeError: this is both, so either `except` catches it."""


class DtypeError(TypeError, RuntimeError):
    """A dtype the operation does not take (an integer tensor that would require grad, or be averaged):
    a TypeError, and the RuntimeError PyTorch raises there."""


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    """A with-block (or each call of a decorated function) in which grad mode is `enabled` (None leaves it
    as it is), restored after it."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self._previous = is_grad_enabled()
        if self.enabled is not None:
            _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self._previous
        return False

    def _recreate_cm(self):
        # A block of its own for each call of a decorated function: a recursive call must not overwrite
        # the mode that the outer call restores.
        return _GradMode(self.enabled)


class no_grad(_GradMode):
    """Within `with no_grad():` (or a function decorated with it) ops record nothing."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Within `with enable_grad():` (or a function decorated with it) ops record, even inside no_grad()."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_GradMode):
    """torch.inference_mode: no_grad() here (the engine has no separate inference tensors);
    inference_mode(False) leaves grad mode as it is."""

    def __init__(self, mode=True):
        super().__init__(False if mode else None)


class set_grad_enabled(_GradMode):
    """Grad mode on or off: at once when called, as torch.set_grad_enabled(False) is; as a with-block or a
    decorator, only within it, and the mode before it is restored after it."""

    def __init__(self, mode):
        super().__init__(bool(mode))
        self._previous = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __enter__(self):
        pass  # the call set the mode already; __exit__ restores the one from before the call

    def __call__(self, function):
        _state.grad_enabled = self._previous  # as a decorator the mode holds within the function alone
        return super().__call__(function)


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
        try:
            out = Tensor._wrap(ctx.forward(*arrays, **options))
        except ValueError as e:  # NumPy's refusals (shapes that do not broadcast or multiply)
            raise e if isinstance(e, ShapeError) else ShapeError(f"{cls.__name__}: {e}") from None
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


@contextlib.contextmanager
def _shapes_must_fit(name):
    """NumPy's ValueError for shapes that do not fit, raised as a ShapeError naming the operation."""
    try:
        yield
    except ShapeError:
        raise
    except ValueError as e:
        raise ShapeError(f"{name}: {e}") from None


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


def backpropagate(outputs, gradients, retain_graph, receive):
    """Run the recorded VJPs back from `outputs`, each seeded with its gradient (an array of its shape),
    to every tensor that requires grad: each VJP once, after those of all of its consumers, as backward()
    does. A tensor that called retain_grad() adds its complete gradient to its .grad; `receive(t, g)` gets
    each tensor's (leaves and intermediate tensors alike), and the caller keeps the ones it wants
    (backward() puts the leaves' in .grad, autograd.grad returns its inputs'). The arrays the graph saved
    are freed afterwards unless `retain_graph`."""
    start = object()  # a node whose parents are the outputs: one walk of the graph covers them all
    grads = {}
    for out, g in zip(outputs, gradients):
        grads[id(out)] = grads[id(out)] + g if id(out) in grads else g
    order = toposort(start, parents=lambda t: outputs if t is start else _differentiable_parents(t))
    for node in order[1:]:
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._retains_grad:
            node._accumulate(g)
        receive(node, g)
        ctx = node._ctx
        if ctx is None:
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


def initial_gradient(t, gradient, what, given):
    """The gradient that a walk back from t starts with: `gradient` (a Tensor or array of t's shape), or 1
    when it is None and t is a scalar. `what` names the call in errors, `given` the argument that gives one."""
    xp = backend.get_array_module(t.array)
    if gradient is None:
        if t.array.size != 1:
            raise RuntimeError(f"{what} without a gradient needs a scalar, this tensor has shape {t.shape}: "
                               f"pass {given} with a gradient of that shape")
        return xp.ones_like(t.array)
    gradient = gradient.array if isinstance(gradient, Tensor) else xp.asarray(gradient, dtype=t.dtype)
    if gradient.shape != t.shape:
        raise ShapeError(f"{given}: it has shape {gradient.shape}, the tensor {t.shape}")
    return gradient


def _leaf_into_grad(t, g):
    """backward()'s rule: a leaf adds its gradient to its .grad."""
    if t._ctx is None:
        t._accumulate(g)


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


# PyTorch's names for the tensor types of its dtypes, as x.type() gives them.
_TENSOR_TYPES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
                 "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
                 "bool": "BoolTensor"}


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


def _sizes(name, args, keyword):
    """Sizes given as arguments, as one tuple or list, or by keyword (reshape(shape=...), view(size=...))."""
    if keyword is None:
        return _shape_args(args)
    if args:
        raise TypeError(f"{name}: give the sizes as arguments or by keyword, not both")
    return (keyword,) if isinstance(keyword, int) else tuple(keyword)


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


def _legacy_sizes(sizes, dtype):
    """The zeros that `Tensor(*sizes)` (or `Tensor()`) makes, as torch.Tensor's legacy constructor does."""
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 0 for n in sizes):
        raise TypeError(f"Tensor{tuple(sizes)!r}: give one data argument (a list, number or array), or sizes as "
                        f"non-negative ints; pass requires_grad=, dtype= and device= by keyword")
    return np.zeros(tuple(int(n) for n in sizes) if sizes else (0,), dtype=dtype or np.float32)


class Tensor:
    """An n-dimensional array on a device, with an optional gradient and the op that made it."""

    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators
    _retains_grad = False  # set by retain_grad(): backward() keeps this non-leaf's gradient in .grad

    def __init__(self, *data, requires_grad=False, dtype=None, device=None):
        """`Tensor(data)` infers the dtype as torch.tensor does (arrays keep theirs); `Tensor(2, 3)` is
        PyTorch's legacy constructor of a float32 tensor of that shape (zeros here, uninitialised there),
        and `Tensor()` an empty one."""
        data = _legacy_sizes(data, dtype) if len(data) != 1 else data[0]
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
            raise DtypeError(f"only floating-point tensors can require grad, not {self.dtype}")
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("requires_grad_(False) on a tensor made by a recorded op: use .detach() instead")
        self.requires_grad = requires_grad
        return self

    @property
    def data(self):
        """As in PyTorch: the same values as a tensor that shares this one's memory but is cut from the tape
        and from its version counter, so `p.data.mul_(0.5)` changes p and nothing records it. The array
        itself is `.array`."""
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value):
        """`p.data = t`: p holds t's array from now on (any shape; the dtype must stay floating point while
        p requires grad), and keeps its gradient and its place on the tape."""
        array = value.array if isinstance(value, Tensor) else backend.array_module(self.device).asarray(value)
        if self.requires_grad and not _float_dtype(array.dtype):
            raise TypeError(f".data = ...: a tensor that requires grad must hold floating-point values, "
                            f"not {array.dtype}")
        self.array = array

    shape = property(lambda self: tuple.__new__(Size, self.array.shape))
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
        """The shape (a torch.Size), or with `dim` the length of that axis (PyTorch's meaning, not NumPy's)."""
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
            raise ShapeError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.array.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.array).tolist()

    def _one_value(self, what):
        if self.array.size != 1:
            raise ShapeError(f"{what} of a tensor with {self.array.size} elements (shape {self.shape}) is "
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
        with _shapes_must_fit("item assignment"):
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
        """With no argument, PyTorch's name for the tensor's type ('torch.FloatTensor', on cuda
        'torch.cuda.FloatTensor'); with a dtype, the tensor in that dtype; with such a name, the tensor in
        its dtype on its device, as in PyTorch."""
        if dtype is None:
            if self.dtype.name not in _TENSOR_TYPES:
                raise DtypeError(f"type(): PyTorch has no tensor type for {self.dtype}; use x.dtype")
            return f"torch.{'cuda.' if self.device == 'cuda' else ''}{_TENSOR_TYPES[self.dtype.name]}"
        if isinstance(dtype, str) and dtype.startswith("torch."):
            types = {f"torch.{name}": d for d, name in _TENSOR_TYPES.items()}
            on_cpu = dtype.replace(".cuda.", ".")
            if on_cpu not in types:
                raise ValueError(f"type(): unknown tensor type {dtype!r}: give a dtype or one of {', '.join(types)}")
            return self.to("cpu" if on_cpu == dtype else "cuda", np.dtype(types[on_cpu]))
        return self.to(np.dtype(dtype))  # to() would take a string for a device

    def is_floating_point(self):
        return _float_dtype(self.dtype)

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · gradient into every leaf's `.grad` that requires grad (and into the
        `.grad` of the tensors that called retain_grad()).

        The arrays the graph saved are freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "expression has requires_grad=True (or it ran under no_grad)")
        gradient = initial_gradient(self, gradient, "backward()", "backward(gradient)")
        backpropagate([self], [gradient], retain_graph, _leaf_into_grad)

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
    def __truediv__(self, other): return self._true_divide(other)
    def __rtruediv__(self, other): return self._true_divide(other, reverse=True)
    def __matmul__(self, other): return self._binary(other, ops.MatMul)
    def __rmatmul__(self, other): return self._binary(other, ops.MatMul, reverse=True)
    def __neg__(self): return ops.Neg.apply(self)
    def __pos__(self): return self
    def __abs__(self): return self.abs()

    def __pow__(self, exponent):
        if not isinstance(exponent, Tensor) and not np.isscalar(exponent):
            raise TypeError("tensor ** exponent takes a Python number or a Tensor as the exponent")
        return self._binary(exponent, ops.Pow)

    def __rpow__(self, base):
        return self._constant(base) ** self

    def _true_divide(self, other, reverse=False):
        """self / other. Integer and boolean operands alone divide in float32, PyTorch's default dtype
        (NumPy would give float64); with a floating-point operand the result has its dtype, as in any op."""
        a, b = _tensors(self, other)
        if not (_float_dtype(a.dtype) or _float_dtype(b.dtype)):
            a = a.float()
        return ops.Div.apply(b, a) if reverse else ops.Div.apply(a, b)

    def _no_grad_math(self, other, fn, name):
        """Integer-valued arithmetic (//, %, rounded division) that has no gradient: refused on tensors that
        need one. The operands' dtypes combine as in the ops (an integer tensor // 2.0 is float32)."""
        a, b = _tensors(self, other)
        if (a.requires_grad or b.requires_grad) and is_grad_enabled():
            raise RuntimeError(f"{name} is not differentiable: apply it to a tensor that needs no grad "
                               "(x.detach()) or under no_grad()")
        with _shapes_must_fit(name):
            return Tensor._wrap(fn(*_common_dtype(name, (a, b))))

    def __floordiv__(self, other): return self._no_grad_math(other, lambda a, b: a // b, "//")
    def __rfloordiv__(self, other): return self._no_grad_math(other, lambda a, b: b // a, "//")
    def __mod__(self, other): return self._no_grad_math(other, lambda a, b: a % b, "%")
    def __rmod__(self, other): return self._no_grad_math(other, lambda a, b: b % a, "%")

    def _compare(self, other, fn):
        other = other.array if isinstance(other, Tensor) else other
        with _shapes_must_fit("comparison"):
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

    def nonzero(self, *, as_tuple=False):
        """The indices of the non-zero elements: an (n, ndim) int64 tensor, or with as_tuple=True one int64
        tensor of n indices per dimension (a 0-d tensor counting as 1-d, as in PyTorch). No gradient: indices."""
        xp = backend.get_array_module(self.array)
        if as_tuple:
            return tuple(Tensor._wrap(i.astype(np.int64, copy=False)) for i in xp.nonzero(xp.atleast_1d(self.array)))
        return Tensor._wrap(xp.argwhere(self.array).astype(np.int64, copy=False))

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return Tensor._wrap(self.array.any(axis=_dims(dim, axis), keepdims=_keep(keepdim, keepdims)))

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return Tensor._wrap(self.array.all(axis=_dims(dim, axis), keepdims=_keep(keepdim, keepdims)))

    def sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
        t = self if dtype is None else self.to(dtype)
        return ops.Sum.apply(t, axis=_dims(dim, axis), keepdims=_keep(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        """The mean over all elements or `dim`, in `dtype` if given. An integer tensor needs a dtype, as
        in PyTorch: x.float().mean() or x.mean(dtype=torch.float32)."""
        t = self if dtype is None else self.to(dtype)
        t._require_float("mean()", "x.float().mean() or x.mean(dtype=torch.float32)")
        axis = _dims(dim, axis)
        axes = range(t.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        count = math.prod(t.shape[a] for a in axes)
        return t.sum(axis=axis, keepdims=_keep(keepdim, keepdims)) * (1.0 / count)

    def _require_float(self, what, fix):
        if not _float_dtype(self.dtype):
            raise DtypeError(f"{what} needs a floating-point tensor, as in PyTorch, not {self.dtype}: convert "
                             f"first, {fix}")

    def _floating(self):
        """This tensor, or a float32 copy of an integer or boolean one: what PyTorch takes exp, log, sin,
        tanh, sigmoid, log1p, expm1 or erf of."""
        return self if _float_dtype(self.dtype) else self.float()

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

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.Max.apply(self, axis=_dims(dim, axis), keepdims=_keep(keepdim, keepdims))

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return -(-self).amax(_dims(dim, axis), _keep(keepdim, keepdims))

    def _arg(self, method, dim, keepdim):
        index = getattr(self.array, method)(axis=dim)
        if keepdim:
            xp = backend.get_array_module(self.array)
            index = xp.expand_dims(index, dim) if dim is not None else index.reshape((1,) * self.ndim)
        return Tensor._wrap(index)

    def argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return self._arg("argmax", _dims(dim, axis), _keep(keepdim, keepdims))

    def argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return self._arg("argmin", _dims(dim, axis), _keep(keepdim, keepdims))

    def reshape(self, *sizes, shape=None):
        """reshape(2, 3), reshape((2, 3)) or reshape(shape=(2, 3)), as PyTorch takes each."""
        return ops.Reshape.apply(self, shape=_sizes("reshape", sizes, shape))

    def view(self, *sizes, size=None):
        """view(2, 3), view((2, 3)) or view(size=(2, 3)): reshape, which makes a view where it can."""
        return self.reshape(_sizes("view", sizes, size))

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def unsqueeze(self, dim=None, *, axis=None):
        dim = _dims(dim, axis)
        if dim is None:
            raise TypeError("unsqueeze: give the dim where the new axis goes")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None, *, axis=None):
        """Drop axes of length 1: all of them, or those of `dim` (an int or tuple) that have length 1."""
        dim = _dims(dim, axis)
        if dim is None:
            dims = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            dims = {d % max(self.ndim, 1) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
            dims = {d for d in dims if self.ndim and self.shape[d] == 1}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in dims))

    def expand(self, *sizes, size=None):
        """A broadcast view to `sizes` (-1 keeps an axis); the gradient sums over the stretched axes."""
        sizes = _sizes("expand", sizes, size)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise RuntimeError(f"expand: {len(sizes)} sizes for a tensor with {self.ndim} dimensions")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
        return ops.Expand.apply(self, shape=shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def permute(self, *order, dims=None):
        """The axes in the order `dims` (a permutation of all of them)."""
        dims = _sizes("permute", order, dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ShapeError(f"permute: {dims} is not a permutation of the {self.ndim} dimensions")
        return ops.Transpose.apply(self, axes=tuple(d % self.ndim for d in dims))

    def transpose(self, *axes, dim0=None, dim1=None):
        """Two axes (or dim0=, dim1=): swap them (PyTorch). No axes: reverse them, a longer permutation:
        apply it (NumPy, kept from before; `permute` is the PyTorch name for that)."""
        axes = _shape_args(axes) + tuple(d for d in (dim0, dim1) if d is not None)
        if len(axes) != 2:
            return self.permute(*(axes or reversed(range(self.ndim))))
        perm = list(range(self.ndim))
        perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
        return self.permute(*perm)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with at most 2 dimensions, this one has {self.ndim}")
        return self.transpose()

    def swapaxes(self, axis0, axis1): return self.transpose(axis0, axis1)
    def swapdims(self, dim0, dim1): return self.transpose(dim0, dim1)

    def split(self, split_size, dim=0):
        """Pieces of `split_size` along `dim` (the last one smaller), or of the given list of sizes."""
        n = self.shape[dim]
        if isinstance(split_size, int):
            if split_size < 1:
                raise ValueError(f"split: split_size must be positive, got {split_size}")
            sizes = [min(split_size, n - s) for s in range(0, n, split_size)]
        else:
            sizes = list(split_size)
            if sum(sizes) != n:
                raise ShapeError(f"split: sizes {sizes} add up to {sum(sizes)}, but dimension {dim} has {n}")
        where, starts = [slice(None)] * (dim % self.ndim), np.cumsum([0] + sizes)
        return tuple(self[(*where, slice(int(a), int(b)))] for a, b in zip(starts[:-1], starts[1:]))

    def chunk(self, chunks, dim=0):
        """At most `chunks` pieces of equal size ⌈n / chunks⌉ along `dim` (the last one smaller)."""
        return self.split(max(1, -(-self.shape[dim] // chunks)), dim)

    def unbind(self, dim=0):
        return tuple(t.squeeze(dim) for t in self.split(1, dim))

    def matmul(self, other): return self @ other
    def exp(self): return ops.Exp.apply(self._floating())
    def log(self): return ops.Log.apply(self._floating())
    def relu(self): return ops.ReLU.apply(self)
    def tanh(self): return ops.Tanh.apply(self._floating())
    def sigmoid(self): return ops.Sigmoid.apply(self._floating())
    def pow(self, exponent): return self ** exponent
    def add(self, other, alpha=1): return self + (other if alpha == 1 else other * alpha)
    def sub(self, other, alpha=1): return self - (other if alpha == 1 else other * alpha)
    def mul(self, other): return self * other
    def neg(self): return -self

    def div(self, other, *, rounding_mode=None):
        """self / other, or with rounding_mode 'floor' or 'trunc' the quotient rounded down or toward zero
        (integers stay integers; no gradient, as for //)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode == "floor":
            return self // other
        if rounding_mode == "trunc":
            return self._no_grad_math(other, _trunc_divide, "div(rounding_mode='trunc')")
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")

    def sqrt(self): return self ** 0.5
    def rsqrt(self): return self ** -0.5
    def square(self): return self * self
    def sin(self): return ops.Sin.apply(self._floating())
    def cos(self): return ops.Cos.apply(self._floating())
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

    def prod(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        dim = _dims(dim, axis)
        if isinstance(dim, tuple):
            raise TypeError("prod: dim must be one int (or None for all elements), as in PyTorch")
        t = self if dtype is None else self.to(dtype)
        return ops.Prod.apply(t, axis=dim, keepdims=_keep(keepdim, keepdims))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Σ (x - mean)² / (n - correction), with correction 1 (Bessel's) unless unbiased=False or given."""
        self._require_float("var() and std()", "x.float().var()")
        axis, keep = _dims(dim, axis), _keep(keepdim, keepdims)
        if correction is None:
            correction = 0 if unbiased is False else 1
        axes = range(self.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        count = math.prod(self.shape[a] for a in axes)
        d = self - self.mean(axis=axis, keepdims=True)
        scale = 1.0 / (count - correction) if count > correction else float("nan")  # PyTorch's nan, no error
        return (d * d).sum(axis=axis, keepdims=keep) * scale

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """√var; where it is 0 (constant values) the gradient is 0, as in PyTorch."""
        var = self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims)
        return _power_flat_at_zero(var, 0.5)

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm (2, 1, inf or any positive p; 'fro' is 2) over all elements or `dim`. At 0, and for
        p < 1 at each zero element, the gradient is 0 (the subgradient PyTorch takes), not NaN. p = 0 counts
        the non-zero elements and p = -inf is the least |x|, as in PyTorch."""
        self._require_float("norm()", "x.float().norm()")
        if p == "fro":
            p = 2
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p >= 0 or p == -math.inf):
            raise ValueError(f"norm: p must be 0, a positive number, math.inf, -math.inf or 'fro', got {p!r}")
        if p == 0:  # a count, recorded with gradient 0 as floor is
            axis = tuple(dim) if isinstance(dim, list) else dim
            count = (self.array != 0).sum(axis=axis, keepdims=keepdim).astype(self.dtype)
            return self.sum(dim, keepdim)._flat(backend.get_array_module(self.array).asarray(count))
        if p == -math.inf:
            return self.abs().amin(dim, keepdim)
        if p == 2:
            return _power_flat_at_zero((self * self).sum(dim, keepdim), 0.5)
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == math.inf:
            return self.abs().amax(dim, keepdim)
        return _power_flat_at_zero(_power_flat_at_zero(self.abs(), p).sum(dim, keepdim), 1.0 / p)

    def logsumexp(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """log Σ eˣ along dim, shifted by the (constant) maximum so no exponential overflows. A row of -inf
        gives -inf and one holding +inf gives inf, as in PyTorch (their gradients are NaN there, as its are)."""
        dim, keepdim = _dims(dim, axis), _keep(keepdim, keepdims)
        if dim is None:
            raise TypeError("logsumexp: give dim (an int or a tuple), as PyTorch requires")
        t = self._floating()
        xp = backend.get_array_module(t.array)
        top = t.array.max(axis=dim, keepdims=True)
        top = Tensor._wrap(xp.where(xp.isfinite(top), top, 0).astype(t.dtype, copy=False))  # inf - inf is NaN
        with np.errstate(divide="ignore"):  # log 0 = -inf is the answer for a row of -inf
            out = (t - top).exp().sum(dim, keepdim=True).log() + top
        return out if keepdim else out.squeeze(dim)

    def softmax(self, dim=-1, dtype=None, *, axis=None):
        return self.log_softmax(dim, dtype, axis=axis).exp()

    def log_softmax(self, dim=-1, dtype=None, *, axis=None):
        """x - logsumexp(x) along `dim`, in `dtype` if given (an integer tensor needs one, as in PyTorch)."""
        dim = dim if axis is None else axis
        t = self if dtype is None else self.to(dtype)
        t._require_float("softmax() and log_softmax()", "x.float() or pass dtype=torch.float32")
        return ops.LogSoftmax.apply(t, axis=dim)

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
            with _shapes_must_fit(name):
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
        with _shapes_must_fit("copy_"):
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

    def clamp_(self, min=None, max=None):
        """In place: each value limited to [min, max] (either may be None, not both)."""
        if min is None and max is None:
            raise ValueError("clamp_: give min, max or both")
        self._check_inplace("clamp_")
        bounds = [b.array if isinstance(b, Tensor) else b for b in (min, max)]
        backend.get_array_module(self.array).clip(self.array, *bounds, out=self.array)
        self._version[0] += 1
        return self

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """In place: values drawn from N(mean, std²) by `generator` (a NumPy Generator), else by the engine's
        generator, so manual_seed repeats them."""
        return self._draw("normal_", lambda rng: rng.normal(mean, std, size=self.shape), generator)

    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        """In place: values drawn uniformly from [from_, to), as normal_ draws them."""
        return self._draw("uniform_", lambda rng: rng.uniform(from_, to, size=self.shape), generator)

    def _draw(self, name, draw, generator):
        self._check_inplace(name)
        self._require_float(f"{name} (random values)", "x = x.float()")
        values = draw(backend.generator("cpu") if generator is None else generator)
        self.array[...] = backend.to_device(np.asarray(values, dtype=self.dtype), self.device)
        self._version[0] += 1
        return self

    def retain_grad(self):
        """Keep this tensor's gradient in .grad after backward(), as a leaf keeps its own (on a leaf, nothing
        changes). Retained gradients accumulate over backward() calls, as leaves' do."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: it gets no gradient; "
                               "call it on a result of tensors with requires_grad=True")
        if not self.is_leaf:
            self._retains_grad = True

    retains_grad = property(lambda self: self._retains_grad, doc="Whether retain_grad() was called on this non-leaf.")

    def _axis(self, dim, name):
        """`dim` as an axis in [0, ndim), refused if out of range (a 0-d tensor takes 0 and -1, as in PyTorch)."""
        n = max(self.ndim, 1)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
            raise IndexError(f"{name}: dim {dim!r} is out of range for a tensor with {self.ndim} dimensions: "
                             f"give an int in [{-n}, {n - 1}]")
        return int(dim) % n

    def mm(self, mat2):
        """The product of two matrices (2-D); matmul (@) also takes batches and vectors."""
        _check_product("mm", self, mat2, (2, 2))
        return self @ mat2

    def bmm(self, mat2):
        """The products of two batches of matrices (B, n, k) and (B, k, m), of one batch size: no broadcasting."""
        _check_product("bmm", self, mat2, (3, 3))
        if self.shape[0] != mat2.shape[0]:
            raise RuntimeError(f"bmm: batches of {self.shape[0]} and {mat2.shape[0]} matrices; bmm does not "
                               f"broadcast: use matmul (@) for that")
        return self @ mat2

    def mv(self, vec):
        """The product of a matrix (2-D) and a vector (1-D)."""
        _check_product("mv", self, vec, (2, 1))
        return self @ vec

    def dot(self, other):
        """The inner product of two vectors (1-D) of one length, a 0-d tensor."""
        _check_product("dot", self, other, (1, 1))
        return self @ other

    def outer(self, vec2):
        """The outer product of two vectors (1-D): out[i, j] = self[i] · vec2[j]."""
        if self.ndim != 1 or vec2.ndim != 1:
            raise RuntimeError(f"outer: expects two 1-D tensors, got {self.ndim}-D and {vec2.ndim}-D")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    def _flat(self, array):
        """`array`, a function of this tensor that is constant wherever it is differentiable (floor, sign),
        recorded as a result of this tensor with gradient 0, as PyTorch records it."""
        return ops.Where.apply(Tensor._wrap(array), self, condition=backend.get_array_module(self.array).asarray(True))

    def _rounded(self, rounding):
        if self.dtype.kind in "biu":  # integers are whole already: PyTorch returns a copy
            return self.clone()
        return self._flat(rounding(self.array))

    def floor(self): return self._rounded(lambda a: backend.get_array_module(a).floor(a))
    def ceil(self): return self._rounded(lambda a: backend.get_array_module(a).ceil(a))
    def trunc(self): return self._rounded(lambda a: backend.get_array_module(a).trunc(a))

    def round(self, decimals=0):
        """To the nearest integer (or multiple of 10^-decimals), halves to even, as PyTorch (and NumPy) round."""
        if decimals and self.dtype.kind in "biu":
            raise TypeError(f"round(decimals={decimals}) of an {self.dtype} tensor: convert it to float first "
                            f"(x.float()), as PyTorch refuses it too")
        return self._rounded(lambda a: a.round(decimals))  # the array's method: NumPy and CuPy both have it

    def sign(self):
        """-1, 0 or 1, and 0 for NaN (NumPy's sign gives NaN); the gradient is 0, as in PyTorch."""
        if self.dtype.kind == "b":
            return self.clone()
        signs = backend.get_array_module(self.array).sign(self.array)
        if self.dtype.kind == "f":
            signs[signs != signs] = 0
        return self._flat(signs)

    def isnan(self): return Tensor._wrap(backend.get_array_module(self.array).isnan(self.array))
    def isinf(self): return Tensor._wrap(backend.get_array_module(self.array).isinf(self.array))
    def isfinite(self): return Tensor._wrap(backend.get_array_module(self.array).isfinite(self.array))

    def flip(self, *dims):
        """The elements in reverse order along each of `dims` (an int, several, or a list); a copy, as in PyTorch."""
        dims = _shape_args(dims)
        axes = [self._axis(d, "flip") for d in dims]
        if len(set(axes)) < len(axes):
            raise RuntimeError(f"flip: a dim appears more than once in dims {dims}")
        key = tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(self.ndim))
        return ops.Index.apply(self, key=key + (Ellipsis,)).clone()  # the slice alone would be a view

    def _triangle(self, name, mask):
        if self.ndim < 2:
            raise RuntimeError(f"{name}: the input must have at least 2 dimensions, this one has {self.ndim}")
        xp = backend.get_array_module(self.array)
        zero = Tensor._wrap(xp.zeros((), dtype=self.dtype))
        return ops.Where.apply(self, zero, condition=mask(xp, *self.shape[-2:]))

    def tril(self, diagonal=0):
        """The lower triangle of the last two axes: the elements on and below the `diagonal`-th diagonal
        (above the main one for diagonal > 0), the others 0."""
        return self._triangle("tril", lambda xp, n, m: xp.tri(n, m, diagonal, dtype=bool))

    def triu(self, diagonal=0):
        """The upper triangle of the last two axes: the elements on and above the `diagonal`-th diagonal."""
        return self._triangle("triu", lambda xp, n, m: ~xp.tri(n, m, diagonal - 1, dtype=bool))

    def masked_fill(self, mask, value):
        """This tensor with `value` (a number, or a 0-d tensor) where the boolean `mask` (broadcast against
        it) holds, in this tensor's dtype. The gradient flows to the elements kept, and to a tensor value
        from every place it fills."""
        xp = backend.get_array_module(self.array)
        mask = mask.array if isinstance(mask, Tensor) else xp.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: the mask is {mask.dtype}; it must be boolean: compare first (x > 0) "
                            f"or convert it with .bool()")
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"masked_fill: value must be a number or a 0-d tensor, this one has shape "
                                   f"{tuple(value.shape)}; to fill from a tensor of values use where(mask, values, x)")
            value = value.to(self.dtype)
        else:
            value = Tensor._wrap(xp.asarray(value, dtype=self.dtype))
        return where(mask, value, self)

    def gather(self, dim, index, *, sparse_grad=False):
        """The elements picked along `dim` by `index`: out[i][j] = input[index[i][j]][j] for dim 0,
        input[i][index[i][j]] for dim 1, and so on. `index` has as many dimensions as the input and is no
        longer than it on the other ones; the gradient is summed back to the elements picked (twice where
        an index repeats). `sparse_grad` is accepted: the gradient is dense."""
        index, key = self._index_positions(dim, index, "gather")
        if self.ndim == 0:
            return self.reshape(1).gather(0, index.reshape(1)).reshape(())
        return ops.Index.apply(self, key=key)

    def _index_positions(self, dim, index, name):
        """gather's and scatter's index, checked (integers, this tensor's rank, no longer than it off `dim`, its
        values in range along `dim`) and as an array, with the key of the position each element names:
        index[i][j] along `dim`, i and j themselves along the others. A 0-d tensor gets no key: the caller
        works on its 1-d view."""
        xp = backend.get_array_module(self.array)
        index = xp.asarray(index.array if isinstance(index, Tensor) else index)
        axis = self._axis(dim, name)
        if index.dtype.kind not in "iu":
            raise TypeError(f"{name}: index must be an integer tensor, this one is {index.dtype}")
        if index.ndim != self.ndim:
            raise RuntimeError(f"{name}: index has {index.ndim} dimensions, the input {self.ndim}: they must have "
                               f"as many (unsqueeze the index)")
        if self.ndim == 0:
            return index, None
        longer = [d for d, (n, m) in enumerate(zip(index.shape, self.shape)) if d != axis and n > m]
        if longer:
            raise RuntimeError(f"{name}: index {tuple(index.shape)} is longer than the input {tuple(self.shape)} on "
                               f"dimension {longer[0]}; only dimension {axis} (dim) may be longer")
        n = self.shape[axis]
        if index.size and (int(index.min()) < 0 or int(index.max()) >= n):
            raise IndexError(f"{name}: index values must lie in [0, {n}) along dimension {axis}, these run from "
                             f"{int(index.min())} to {int(index.max())}")
        key = tuple(index if d == axis else xp.arange(m).reshape((-1,) + (1,) * (self.ndim - d - 1))
                    for d, m in enumerate(index.shape))
        return index, key

    def _scatter_positions(self, dim, index, name, reduce=None):
        if reduce is not None:
            raise ValueError(f"{name}: reduce={reduce!r} is not supported here: use scatter_add or index "
                             f"arithmetic instead")
        if self.ndim == 0:
            raise RuntimeError(f"{name}: the tensor is 0-d: reshape it to 1-d (x.reshape(1)) first")
        return self._index_positions(dim, index, name)

    def _scatter_source(self, src, value, index, name):
        """The values scatter writes, as a tensor of index's shape in this tensor's dtype: src's leading part
        (src at least as long as index on every dimension), or the number `value`."""
        if (src is None) == (value is None):
            raise TypeError(f"{name}: give src (a tensor) or value (a number), one of them")
        if src is None or not isinstance(src, Tensor):
            number = value if src is None else src
            xp = backend.get_array_module(self.array)
            return Tensor._wrap(xp.full(index.shape, number, dtype=self.dtype))
        if src.ndim != index.ndim or any(n > m for n, m in zip(index.shape, src.shape)):
            raise RuntimeError(f"{name}: src {tuple(src.shape)} must be at least as long as index "
                               f"{tuple(index.shape)} on every dimension")
        return src[tuple(slice(0, n) for n in index.shape)].to(self.dtype)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        """This tensor with src's elements (or the number `value`) written where `index` points along `dim`:
        out[i][index[i][j]] = src[i][j] for dim 1, and so on, as torch.scatter. The gradient reaches this
        tensor where nothing was written and src where it was; where an index repeats, one write wins
        (PyTorch leaves which open) and only it gets the gradient."""
        index, key = self._scatter_positions(dim, index, "scatter", reduce)
        values = self._scatter_source(src, value, index, "scatter")
        xp = backend.get_array_module(self.array)
        written = xp.zeros(self.shape, dtype=bool)
        written[key] = True
        source = xp.zeros(self.shape, dtype=np.int64)  # which of values' elements lands on each position
        source[key] = xp.arange(index.size).reshape(index.shape)
        return where(written, values.reshape(-1)[source], self)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        """scatter in place (the one-hot idiom `torch.zeros(n, 10).scatter_(1, labels[:, None], 1)`); like
        every in-place change, refused on a leaf that requires grad and on a tensor the tape recorded."""
        self._check_inplace("scatter_", src if isinstance(src, Tensor) else None)
        index, key = self._scatter_positions(dim, index, "scatter_", reduce)
        self.array[key] = self._scatter_source(src, value, index, "scatter_").array
        self._version[0] += 1
        return self

    def repeat(self, *sizes):
        """This tensor tiled `sizes[d]` times along each dimension d, with new leading dimensions when sizes
        has more entries than the tensor has dimensions, as torch.Tensor.repeat (NumPy's tile). The gradient
        of each element is the sum over its copies."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"repeat: {len(sizes)} repeat counts for a tensor of {self.ndim} dimensions: give at "
                               f"least one count per dimension")
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 for n in sizes):
            raise ValueError(f"repeat: the counts must be non-negative ints, got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
        spread = [m for pair in ((1, n) for n in shape) for m in pair]  # (1, n0, 1, n1, ...)
        tiled = [m for pair in zip(sizes, shape) for m in pair]         # (r0, n0, r1, n1, ...)
        return self.reshape(spread).expand(tiled).reshape([r * n for r, n in zip(sizes, shape)])

    def diag(self, diagonal=0):
        """For a matrix, its `diagonal`-th diagonal (above the main one for diagonal > 0) as a vector; for a
        vector, the square matrix with it on that diagonal and zeros elsewhere, as torch.diag."""
        xp = backend.get_array_module(self.array)
        k = int(diagonal)
        if self.ndim == 2:
            rows, cols = self.shape
            n = max(0, min(rows, cols - k) if k >= 0 else min(rows + k, cols))
            i = xp.arange(n)
            return self[(i, i + k) if k >= 0 else (i - k, i)]
        if self.ndim != 1:
            raise RuntimeError(f"diag: expects a vector or a matrix, this tensor has {self.ndim} dimensions")
        n = self.shape[0] + abs(k)
        if self.shape[0] == 0:
            return Tensor._wrap(xp.zeros((n, n), dtype=self.dtype))
        r, c = xp.arange(n)[:, None], xp.arange(n)[None, :]
        element = xp.minimum(xp.minimum(r, c), self.shape[0] - 1)  # on the diagonal, min(r, c) is the element
        return self[element].masked_fill(c - r != k, 0)

    def trace(self):
        """The sum of a matrix's main diagonal."""
        if self.ndim != 2:
            raise RuntimeError(f"trace: expects a matrix, this tensor has {self.ndim} dimensions")
        return self.diag().sum()

    def log2(self): return ops.Log.apply(self._floating(), base=2)
    def log10(self): return ops.Log.apply(self._floating(), base=10)
    def log1p(self): return ops.Log1p.apply(self._floating())
    def expm1(self): return ops.Expm1.apply(self._floating())

    def erf(self):
        """The error function (on the CPU through Python's math.erf, element by element: NumPy has none)."""
        return ops.Erf.apply(self._floating())

    def cumsum(self, dim, *, dtype=None):
        """The running sums along `dim`; integer and boolean tensors sum in int64, as in PyTorch."""
        axis = self._axis(dim, "cumsum")
        t = self.to(dtype if dtype is not None else np.int64 if self.dtype.kind in "biu" else self.dtype)
        return ops.Cumsum.apply(t, axis=axis) if t.ndim else t.clone()

    def _order(self, dim, descending, name):
        """The int64 indices that sort this tensor along `dim`, equal elements in their original order
        (a stable sort, descending too: the reversed input sorted stably, reversed back); NaN counts as the
        largest value, as in PyTorch."""
        xp = backend.get_array_module(self.array)
        axis = self._axis(dim, name)
        if self.ndim == 0:
            return xp.zeros((), dtype=np.int64)
        stable = {"kind": "stable"} if xp is np else {}  # CuPy sorts stably, and older CuPy takes no kind
        if not descending:
            return xp.argsort(self.array, axis=axis, **stable).astype(np.int64, copy=False)
        backwards = xp.argsort(xp.flip(self.array, axis), axis=axis, **stable)
        return (self.shape[axis] - 1 - xp.flip(backwards, axis)).astype(np.int64, copy=False)

    def sort(self, dim=-1, descending=False, *, stable=False):
        """(values, indices) along `dim`, ascending unless `descending`. Equal elements keep their order
        whatever `stable` says (PyTorch leaves it open unless stable=True). The gradient of the values
        goes back to where each one came from."""
        indices = Tensor._wrap(self._order(dim, descending, "sort"))
        return MinMax(self.gather(dim, indices), indices)

    def argsort(self, dim=-1, descending=False, stable=False):
        """The indices that sort along `dim` (sort(...).indices)."""
        return Tensor._wrap(self._order(dim, descending, "argsort"))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the k largest (or, largest=False, smallest) elements along `dim`, in that
        order; ties in their original order. `sorted=False` gives them sorted too, one of the orders that
        PyTorch allows. The gradient of the values goes back to where each one came from."""
        dim = -1 if dim is None else dim
        axis = self._axis(dim, "topk")
        n = self.shape[axis] if self.ndim else 1
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (0 <= k <= n if self.ndim else k == 1):
            raise RuntimeError(f"topk: k={k!r} is out of range: dimension {axis} has {n} elements")
        order = self._order(dim, largest, "topk")
        indices = Tensor._wrap(order[(slice(None),) * axis + (slice(0, int(k)),)] if self.ndim else order)
        return MinMax(self.gather(dim, indices), indices)


def _power_flat_at_zero(s, exponent):
    """s ** exponent for s >= 0 (exponent > 0), with a gradient of 0 where s = 0: the subgradient PyTorch
    takes for norms and std there. The plain power's VJP would be inf · 0 = NaN; here the power only ever
    sees 1 in place of a 0, and the outer `where` sends no gradient to it."""
    zero = s == 0
    return where(zero, 0.0, where(zero, 1.0, s) ** exponent)


def _trunc_divide(a, b):
    """a / b rounded toward zero; exact for integers (no detour through floats)."""
    if _float_dtype(a.dtype):
        return backend.get_array_module(a).trunc(a / b)
    q = a // b
    return q + ((q < 0) & (q * b != a))  # floor is one below trunc for an inexact negative quotient


def _check_product(name, a, b, dims):
    """mm's, bmm's, mv's and dot's operands: of the ranks `dims`, and of one inner length."""
    if (a.ndim, b.ndim) != dims:
        raise RuntimeError(f"{name}: expects {dims[0]}-D and {dims[1]}-D tensors, got {a.ndim}-D and {b.ndim}-D; "
                           f"matmul (@) takes any")
    inner = a.shape[-1], b.shape[-2 if b.ndim > 1 else 0]
    if inner[0] != inner[1]:
        raise RuntimeError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({inner[0]} against {inner[1]})")


class Size(tuple):
    """torch.Size, a tensor's shape: a tuple of ints (it compares, hashes, unpacks and prints as one) that
    stays a Size when sliced or extended."""

    def __new__(cls, sizes=()):
        sizes = tuple(sizes)
        for i, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                raise TypeError(f"torch.Size() takes an iterable of ints (item {i} is {type(n).__name__})")
        return super().__new__(cls, (int(n) for n in sizes))

    def __getitem__(self, key):
        item = tuple.__getitem__(self, key)
        return tuple.__new__(Size, item) if isinstance(key, slice) else item

    def __add__(self, other):
        return tuple.__new__(Size, tuple.__add__(self, other)) if isinstance(other, tuple) else NotImplemented

    def __radd__(self, other):
        return tuple.__new__(Size, tuple.__add__(other, self)) if isinstance(other, tuple) else NotImplemented

    def numel(self):
        return math.prod(self)


def is_tensor(obj):
    return isinstance(obj, Tensor)


class MinMax(tuple):
    """(values, indices) as max(dim), min(dim), sort and topk return them, with both names, as in PyTorch."""

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


def where(condition, input=None, other=None):
    """input where condition holds, else other; either may be a number, and two numbers make a tensor as
    torch.tensor would (Python floats float32). The gradient flows to the side that was chosen.
    where(condition) alone is condition.nonzero(as_tuple=True), as in PyTorch."""
    if input is None and other is None:
        return (condition if isinstance(condition, Tensor) else Tensor(condition)).nonzero(as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: give both input and other (or neither, for where(condition), the indices of the "
                        "elements that hold)")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(input, device=condition.device if isinstance(condition, Tensor) else None)
    input, other = _tensors(input, other)
    cond = condition.array if isinstance(condition, Tensor) else condition
    return ops.Where.apply(input, other, condition=backend.get_array_module(input.array).asarray(cond, dtype=bool))


def cat(tensors, dim=0, *, axis=None):
    """The tensors joined along an existing axis `dim` (`axis` is an alias, as in PyTorch)."""
    dim = dim if axis is None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    return ops.Cat.apply(*tensors, axis=dim)


concatenate = concat = cat


def stack(tensors, dim=0, *, axis=None):
    """The tensors (all of one shape) joined along a new axis `dim` (`axis` is an alias, as in PyTorch)."""
    dim = dim if axis is None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: expects tensors of one shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def _tensors(a, b):
    if not isinstance(a, Tensor):
        return b._constant(a), b
    return a, (b if isinstance(b, Tensor) else a._constant(b))


from . import ops  # noqa: E402  (ops subclass Function, defined above)
