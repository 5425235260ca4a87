"""The ops: each forward sits beside its vector-Jacobian product (VJP).

`OPS` maps each op's name to its class; it is the list of what the engine can differentiate, and
the test suite checks that every entry has a gradient test. Arrays come from NumPy or CuPy alike:
`get_array_module` picks the module, so the same code runs on both.
"""
import itertools
import math

import numpy as np

from .backend import get_array_module, is_cupy_array
from .tensor import Function

OPS = {}


def register(cls):
    OPS[cls.__name__.lower()] = cls
    return cls


def unbroadcast(grad, shape):
    """Sum `grad` over the axes that broadcasting stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _inner_axis(a):
    """The axis along which a's neighbouring elements lie nearest in memory (of its axes longer than 1)."""
    return min(range(a.ndim), key=lambda axis: abs(a.strides[axis]) if a.shape[axis] > 1 else math.inf)


def _same_layout(a, like):
    """`a` copied into the memory layout of `like` (same shape), unless it has that layout already.
    Elementwise work is fastest when every operand shares one layout."""
    if a.strides == like.strides:
        return a
    out = get_array_module(a).empty_like(like, dtype=a.dtype)
    out[...] = a
    return out


@register
class Add(Function):
    """a + b;  da = g,  db = g  (summed over broadcast axes)."""
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


@register
class Sub(Function):
    """a - b;  da = g,  db = -g."""
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


@register
class Mul(Function):
    """a * b;  da = g b,  db = g a."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        da = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return da, db


@register
class Div(Function):
    """a / b;  da = g / b,  db = -g a / b²."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved
        da = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return da, db


@register
class Neg(Function):
    """-a;  da = -g."""
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


@register
class Pow(Function):
    """a ** b (b a tensor or a constant);  da = g b a^(b-1)  (0 where b = 0),  db = g a^b ln a  (0 where a = 0
    and b >= 0, as PyTorch)."""
    def forward(self, a, b):
        out = a ** b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved
        xp = get_array_module(g)
        da = db = None
        if self.needs_input_grad[0]:  # a⁰ = 1 everywhere: its gradient is 0, also at a = 0 (not 0 · 0⁻¹)
            da = unbroadcast(xp.where(b == 0, 0, g * b * a ** xp.where(b == 0, 1, b - 1)).astype(g.dtype), a.shape)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):  # NumPy's warnings; CuPy has none (nor errstate)
                log_a = xp.where((a == 0) & (b >= 0), 0, xp.log(xp.where(a == 0, 1, a)))
            db = unbroadcast((g * out * log_a).astype(g.dtype), b.shape)
        return da, db


@register
class MatMul(Function):
    """a @ b (batched, broadcasting, 1-D operands as in NumPy);  da = g bᵀ,  db = aᵀ g."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, g):
        a, b = self.saved
        # Give 1-D operands (and the matching axis of g) their implied matrix axis back.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = g[..., None, :] if b.ndim > 1 else g[None]
        if b.ndim == 1:
            g = g[..., None]
        da = unbroadcast(g @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(a2.swapaxes(-1, -2) @ g, b2.shape).reshape(b.shape) if self.needs_input_grad[1] else None
        return da, db


@register
class Sum(Function):
    """Σ a over `axis`;  da = g broadcast back over the summed axes."""
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.keepdims and self.axis is not None:
            g = xp.expand_dims(g, self.axis)
        return (xp.broadcast_to(g, self.shape),)


@register
class Max(Function):
    """max a over `axis`;  da = g / k at each of the k tied maxima, 0 elsewhere (ties split evenly)."""
    def forward(self, a, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims
        out = a.max(axis=axis, keepdims=True)
        self.save_for_backward(a, out)
        if keepdims:
            return out
        return out.reshape(()) if axis is None else out.squeeze(axis)

    def backward(self, g):
        a, out = self.saved
        mask = a == out
        share = g.reshape(out.shape) / mask.sum(axis=self.axis, keepdims=True, dtype=g.dtype)
        return (mask * share,)


@register
class Maximum(Function):
    """max(a, b) elementwise;  da = g where a > b, db = g where b > a, g/2 to each where they tie (as PyTorch)."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return get_array_module(a).maximum(a, b)

    def backward(self, g):
        a, b = self.saved
        share = (a > b) + 0.5 * (a == b)
        da = unbroadcast((g * share).astype(g.dtype), a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast((g * (1 - share)).astype(g.dtype), b.shape) if self.needs_input_grad[1] else None
        return da, db


@register
class Where(Function):
    """a where the condition holds, else b;  da = g where it holds,  db = g where it does not."""
    def forward(self, a, b, condition):
        self.condition, self.shapes = condition, (a.shape, b.shape)
        return get_array_module(a).where(condition, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        da = unbroadcast(xp.where(self.condition, g, zero), self.shapes[0]) if self.needs_input_grad[0] else None
        db = unbroadcast(xp.where(self.condition, zero, g), self.shapes[1]) if self.needs_input_grad[1] else None
        return da, db


@register
class Cat(Function):
    """The inputs joined along `axis`;  each input's gradient is its slice of g."""
    def forward(self, *arrays, axis=0):
        self.axis, self.sizes = axis, [a.shape[axis] for a in arrays]
        return get_array_module(*arrays).concatenate(arrays, axis=axis)

    def backward(self, g):
        bounds = list(itertools.accumulate(self.sizes[:-1]))
        return tuple(get_array_module(g).split(g, bounds, axis=self.axis))


@register
class Reshape(Function):
    """a reshaped;  da = g reshaped back."""
    view = True

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


@register
class Transpose(Function):
    """a with its axes permuted;  da = g with the inverse permutation."""
    view = True

    def forward(self, a, axes):
        self.inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
        return a.transpose(axes)

    def backward(self, g):
        return (g.transpose(self.inverse),)


@register
class Expand(Function):
    """a broadcast to `shape` (a read-only view);  da = g summed over the stretched axes."""
    view = True

    def forward(self, a, shape):
        self.shape = a.shape
        return get_array_module(a).broadcast_to(a, shape)

    def backward(self, g):
        return (unbroadcast(g, self.shape),)


def _is_basic(key):
    """Whether a key indexes by ints, slices, None and ... only: then a[key] is a view, and no element is
    picked twice."""
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in (key if isinstance(key, tuple)
                                                                                   else (key,)))


@register
class Index(Function):
    """a[key] for any NumPy key;  da = g scattered back to the places it came from, summed where an integer
    index picks the same element more than once."""
    def forward(self, a, key):
        self.shape, self.key, self.view = a.shape, key, _is_basic(key)
        return a[key]

    def backward(self, g):
        xp = get_array_module(g)
        if self.view or _is_mask(self.key):  # each element at most once: a plain assignment
            da = xp.zeros(self.shape, dtype=g.dtype)
            da[self.key] = g
            return (da,)
        # Integer arrays can repeat an element: number the elements, index the numbers the same way, and
        # sum g into each number's bin (bincount, on NumPy and CuPy alike; no Python loop).
        size = math.prod(self.shape)
        where = xp.arange(size).reshape(self.shape)[self.key]
        da = xp.bincount(where.reshape(-1), weights=g.reshape(-1), minlength=size)
        return (da.astype(g.dtype, copy=False).reshape(self.shape),)


def _is_mask(key):
    """A key that is one boolean array (x[x > 0]), which picks each element at most once."""
    return getattr(key, "dtype", None) is not None and key.dtype.kind == "b"


@register
class Cast(Function):
    """a converted to `dtype` (always a copy);  da = g converted back to a's dtype."""
    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype, copy=True)

    def backward(self, g):
        return (g.astype(self.dtype),)


@register
class Exp(Function):
    """eᵃ;  da = g eᵃ."""
    def forward(self, a):
        out = get_array_module(a).exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return (g * self.saved[0],)


@register
class Log(Function):
    """ln a, or log₂ a and log₁₀ a with `base` 2 or 10 (computed as such, so that log₂ 8 is exactly 3);
    da = g / (a ln base)."""
    def forward(self, a, base=None):
        self.save_for_backward(a)
        self.ln_base = None if base is None else math.log(base)
        xp = get_array_module(a)
        return {None: xp.log, 2: xp.log2, 10: xp.log10}[base](a)

    def backward(self, g):
        (a,) = self.saved
        return (g / a if self.ln_base is None else g / (a * self.ln_base),)


@register
class Log1p(Function):
    """ln(1 + a), exact for small a;  da = g / (1 + a)."""
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).log1p(a)

    def backward(self, g):
        return (g / (1 + self.saved[0]),)


@register
class Expm1(Function):
    """eᵃ - 1, exact for small a;  da = g eᵃ = g (out + 1)."""
    def forward(self, a):
        out = get_array_module(a).expm1(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return (g * (self.saved[0] + 1),)


@register
class Sin(Function):
    """sin a;  da = g cos a."""
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).sin(a)

    def backward(self, g):
        return (g * get_array_module(g).cos(self.saved[0]),)


@register
class Cos(Function):
    """cos a;  da = -g sin a."""
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).cos(a)

    def backward(self, g):
        return (-g * get_array_module(g).sin(self.saved[0]),)


@register
class Prod(Function):
    """Π a along `axis` (all elements for None);  da_i = g Π_{j≠i} a_j, computed from the products before
    and after i (no division, so zeros are handled)."""
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        self.save_for_backward(a)
        return a.prod(axis=axis, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        (a,) = self.saved
        x = a.reshape(-1) if self.axis is None else xp.moveaxis(a, self.axis, -1)
        ones = xp.ones_like(x[..., :1])
        before = xp.cumprod(xp.concatenate([ones, x[..., :-1]], -1), -1)
        after = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(x, -1)[..., :-1]], -1), -1), -1)
        if self.axis is None:
            others = (before * after).reshape(self.shape)
        else:
            others = xp.moveaxis(before * after, -1, self.axis)
            g = g if self.keepdims else xp.expand_dims(g, self.axis)
        return ((g * others).astype(g.dtype, copy=False),)


@register
class Cumsum(Function):
    """The running sums of a along `axis`, out_i = Σ_{j≤i} a_j;  da_j = Σ_{i≥j} g_i, the running sums of g
    taken from the other end."""
    def forward(self, a, axis):
        self.axis = axis
        return get_array_module(a).cumsum(a, axis=axis)

    def backward(self, g):
        xp = get_array_module(g)
        return (xp.flip(xp.cumsum(xp.flip(g, self.axis), axis=self.axis), self.axis),)


def _erf(x):
    """The error function, elementwise: CuPy has it; NumPy does not, so the CPU takes Python's math.erf
    element by element (exact, and slow: gelu(approximate='tanh') avoids it)."""
    if is_cupy_array(x):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)  # asarray: a 0-d input gives a float


@register
class Erf(Function):
    """erf a = (2/√π) ∫₀ᵃ e^(-t²) dt;  da = g (2/√π) e^(-a²)."""
    def forward(self, a):
        self.save_for_backward(a)
        return _erf(a)

    def backward(self, g):
        (a,) = self.saved
        return (g * (2 / math.sqrt(math.pi)) * get_array_module(g).exp(-a * a),)


@register
class GELU(Function):
    """x Φ(x) with Φ(x) = (1 + erf(x/√2))/2;  da = g (Φ(x) + x φ(x)).  With approximate='tanh':
    Φ(x) ≈ (1 + tanh(u))/2, u = √(2/π)(x + 0.044715x³), and da = g d/dx [x (1 + tanh u)/2]."""
    def forward(self, a, approximate="none"):
        xp = get_array_module(a)
        self.approximate = approximate
        if approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            t = xp.tanh(c * (a + 0.044715 * a ** 3))
            self.save_for_backward(a, t)
            return 0.5 * a * (1 + t)
        cdf = 0.5 * (1 + _erf(a / math.sqrt(2)))
        self.save_for_backward(a, cdf)
        return a * cdf

    def backward(self, g):
        xp = get_array_module(g)
        a, s = self.saved
        if self.approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            du = c * (1 + 3 * 0.044715 * a * a)
            return (g * (0.5 * (1 + s) + 0.5 * a * (1 - s * s) * du),)
        pdf = xp.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return (g * (s + a * pdf),)


@register
class ReLU(Function):
    """max(a, 0);  da = g where a > 0, else 0 (0 at a = 0, as PyTorch)."""
    def forward(self, a):
        # Against an array of zeros, not the scalar 0: NumPy vectorises maximum for two arrays only
        # (docs/BENCHMARKS.md, "Array forms").
        xp = get_array_module(a)
        out = xp.zeros_like(a)
        xp.maximum(a, out, out=out)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return (_same_layout(g, out) * (out > 0),)


@register
class Tanh(Function):
    """tanh a;  da = g (1 - tanh² a)."""
    def forward(self, a):
        out = get_array_module(a).tanh(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return (g * (1 - out * out),)


@register
class Sigmoid(Function):
    """σ(a) = 1 / (1 + e⁻ᵃ), computed as (1 + tanh(a/2)) / 2, which never overflows;  da = g σ (1 - σ)."""
    def forward(self, a):
        out = 0.5 * (1 + get_array_module(a).tanh(0.5 * a))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved
        return (g * out * (1 - out),)


@register
class Linear(Function):
    """x wᵀ + b for x (..., in), w (out, in), b (out);  dx = g w,  dw = gᵀ x,  db = Σ g."""
    def forward(self, x, w, b=None):
        self.save_for_backward(x, w)
        out = x @ w.T
        if b is not None:
            out += b
        return out

    def backward(self, g):
        x, w = self.saved
        g2 = g.reshape(-1, g.shape[-1])
        dx = g @ w if self.needs_input_grad[0] else None
        dw = g2.T @ x.reshape(-1, x.shape[-1]) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return dx, dw
        return dx, dw, g2.sum(axis=0) if self.needs_input_grad[2] else None


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


def windows(x, kh, kw, stride, dilation=1):
    """Every kh×kw window of x (C, H, W, N), as a strided view (C, kh, kw, Ho, Wo, N): no copy. `stride`
    and `dilation` (the distance between a window's taps) are ints, or (rows, columns) pairs."""
    (s_h, s_w), (d_h, d_w) = _pair(stride), _pair(dilation)
    c, h, w, n = x.shape
    ho, wo = (h - d_h * (kh - 1) - 1) // s_h + 1, (w - d_w * (kw - 1) - 1) // s_w + 1
    sc, sh, sw, sn = x.strides
    as_strided = get_array_module(x).lib.stride_tricks.as_strided
    return as_strided(x, (c, kh, kw, ho, wo, n), (sc, sh * d_h, sw * d_w, sh * s_h, sw * s_w, sn))


def offsets(kh, kw, ho, wo, stride, dilation=1):
    """For each kernel offset (i, j), the slice of the input that it meets across all output pixels
    (`stride` and `dilation` as in `windows`)."""
    (s_h, s_w), (d_h, d_w) = _pair(stride), _pair(dilation)
    return [(i, j, (slice(i * d_h, i * d_h + (ho - 1) * s_h + 1, s_h),
                    slice(j * d_w, j * d_w + (wo - 1) * s_w + 1, s_w)))
            for i in range(kh) for j in range(kw)]


def pad2d(x, padding):
    """x (C, H, W, N) with `padding` zeros around H and W: an int, or (top, bottom, left, right)."""
    if padding == 0 or padding == (0, 0, 0, 0):
        return x
    top, bottom, left, right = (padding,) * 4 if isinstance(padding, int) else padding
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def weight_grad(g, cols):
    """g colsᵀ: g (O, K) against cols (M, K), both K long (K = Ho·Wo·N, tens of thousands).

    OpenBLAS handles these flat products unevenly, so the form is chosen by shape (measured in
    docs/BENCHMARKS.md, "Array forms"): fewer than 8 output channels, one matrix-vector product per
    channel, which streams the columns, where GEMM would pad the rows to its tile size; otherwise
    (cols gᵀ)ᵀ when cols has more rows than g. GPUs' BLAS shows no such gaps: CuPy gets the plain product.
    """
    if is_cupy_array(g):
        return g @ cols.T
    if g.shape[0] < 8:
        return get_array_module(g).stack([cols @ row for row in g])
    return (cols @ g.T).T if cols.shape[0] > g.shape[0] else g @ cols.T


def gemm_weights(w, b=None):
    """The forward GEMM's left matrix: w (O, C, kh, kw) as (O, C·kh·kw), with b as one more column.

    On the CPU 5 to 7 rows are padded with zero rows to 8, which OpenBLAS multiplies faster (measured in
    docs/BENCHMARKS.md, "Array forms"); the product's extra rows are dropped, and the leading rows of a
    C-ordered array are contiguous like any other.
    """
    xp = get_array_module(w)
    o = w.shape[0]
    weights = w.reshape(o, -1)
    if b is not None:
        weights = xp.concatenate([weights, b[:, None]], axis=1)
    if 4 < o < 8 and not is_cupy_array(w):
        weights = xp.concatenate([weights, xp.zeros((8 - o, weights.shape[1]), dtype=w.dtype)])
    return weights


# Bytes of im2col columns built at a time: a band of output rows whose columns fit in a core's cache
# (2 MiB of L2 on the machine measured) is built, multiplied and dropped before the next, instead of one
# columns matrix of tens of MB that every GEMM streams from memory. Chosen by measurement (docs/
# BENCHMARKS.md, "Array forms", against half, twice and one band): the forward is fastest near 1 MiB,
# the backward, which holds a band of column gradients beside the band of columns, near 2 MiB.
FORWARD_BAND_BYTES = 2 ** 20
BACKWARD_BAND_BYTES = 2 ** 21
# But a band has at least this many columns (output pixels × batch). With many channels on a small
# image, one output row's columns already pass the budget (resnet's 64→64 convolution at 7×7, batch 128:
# 576 rows × 896 columns, 2 MiB), and a band of one row leaves OpenBLAS products too thin to run at
# speed on two threads. Measured on a 2-core AMD EPYC: whole training steps (resnet, best, cnn_bn at
# batch 32 and 128), alternating in one process, ran 8-24% slower without this least, pytorch_example's
# at 32 7% faster; the convolutions alone 1.0-1.8× slower in one-row bands, varying from run to run
# (docs/BENCHMARKS.md, "Array forms", against no least).
MIN_BAND_COLUMNS = 8192


def band_height(rows, ho, row_len, like, budget, min_columns=0):
    """How many of the ho output rows go in one band: as many as keep (rows, band·row_len) numbers of
    the dtype of the array `like` within `budget` bytes, but enough for `min_columns` columns; then
    lowered to the least height that still covers the rows in as many bands (7 rows in bands of 5
    become 4 and 3, not 5 and a thin 2). All of them on a GPU, whose BLAS wants one large product
    rather than many cache-sized ones."""
    if is_cupy_array(like):
        return ho
    height = min(ho, max(budget // (rows * row_len * like.dtype.itemsize), math.ceil(min_columns / row_len), 1))
    bands = math.ceil(ho / height)
    return math.ceil(ho / bands)


@register
class Conv2d(Function):
    """out[n,o,y,x] = b[o] + Σ_{c,i,j} xpad[n,c,y·s+i,x·s+j] w[o,c,i,j]   (NCHW, zero padding p, stride s).

    As GEMMs over the im2col columns X (C·kh·kw, Ho·Wo·N):  out = W X,  dW = G Xᵀ,  dX = Wᵀ G, which
    col2im sums back into the input, one kernel offset at a time. The bias rides along as the weight of
    one more column row that is always 1, so the same two products give out + b and db. The work is
    done in (C, H, W, N) order, batch innermost, so that every copy moves N contiguous numbers at a
    time; the output keeps that layout behind its NCHW shape, and the next convolution or pooling
    reads it without a copy.

    The columns are built a band of output rows at a time (`band_height`), each band's product written
    straight into its rows of the output, so that they stay in cache. When all the columns fit in one
    band within the byte budget they are kept for the backward pass; otherwise the backward pass builds
    them again, band by band, from the input (padded again), which is kh·kw times smaller. On a GPU there is
    one band, kept.

    With `dilation` d, `groups`, a (rows, columns) stride or uneven padding (top, bottom, left, right),
    the general form below runs instead: the window's taps lie d apart, and the channels split into
    `groups` independent convolutions, w (O, C/groups, kh, kw), one GEMM each.
    """
    def forward(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        self.general = not (isinstance(stride, int) and isinstance(padding, int) and dilation == 1 and groups == 1)
        if self.general:
            return self.general_forward(x, w, b, stride, padding, dilation, groups)
        xp = get_array_module(x)
        o, c, kh, kw = w.shape
        x = xp.ascontiguousarray(x.transpose(1, 2, 3, 0))  # free after a conv or pool
        xpad = pad2d(x, padding)
        win = windows(xpad, kh, kw, stride)
        _, _, _, ho, wo, n = win.shape
        weights = gemm_weights(w, b)
        self.stride, self.padding, self.x_shape = stride, padding, (n, c, *x.shape[1:3])
        out = xp.empty((weights.shape[0], ho, wo * n), dtype=x.dtype)
        keep = any(self.needs_input_grad[1:])
        height, keep_cols, self.backward_height = self.band_plan(weights.shape[1], ho, wo * n, x, keep)
        for y, h, cols in self.bands(win, height, b is not None):
            xp.matmul(weights, cols, out=out[:, y:y + h].reshape(weights.shape[0], -1))
        # The columns, when kept; otherwise the input, kh·kw times smaller, to pad and build them again:
        # unpadded, it is the input tensor's own memory whenever that already lies in (C, H, W, N) order
        # (after a convolution, a pool, a batch norm), so nothing is kept for this op alone.
        self.save_for_backward(cols if keep_cols else None, x if keep and not keep_cols else None, w)
        return out[:o].reshape(o, ho, wo, n).transpose(3, 0, 1, 2)

    @staticmethod
    def band_plan(rows, ho, row_len, like, keep):
        """(output rows in a forward band, whether the columns are kept, output rows in a backward band)
        for columns of `rows` rows (C·kh·kw [+ 1]) and ho output rows of row_len columns each. The columns
        are kept when the weights want a gradient (`keep`) and the forward budget alone puts all of them
        in one band (always, on a GPU); then the backward pass is that one band. Otherwise it builds them
        again (a band widened to MIN_BAND_COLUMNS may hold tens of MB) in bands of the backward budget."""
        forward = band_height(rows, ho, row_len, like, FORWARD_BAND_BYTES, MIN_BAND_COLUMNS)
        if keep and band_height(rows, ho, row_len, like, FORWARD_BAND_BYTES) == ho:
            return forward, True, ho
        return forward, False, band_height(rows, ho, row_len, like, BACKWARD_BAND_BYTES, MIN_BAND_COLUMNS)

    @staticmethod
    def bands(win, height, ones_row):
        """(first output row, rows in the band, columns) for each band of `height` output rows of the
        windows `win` (the last may be shorter), the columns (C·kh·kw [+ a row of ones], rows·Wo·N) built
        in one buffer that every band reuses."""
        xp = get_array_module(win)
        c, kh, kw, ho, wo, n = win.shape
        rows = c * kh * kw
        buffer = xp.empty((rows + ones_row) * height * wo * n, dtype=win.dtype)
        for y in range(0, ho, height):
            h = min(height, ho - y)
            cols = buffer[:(rows + ones_row) * h * wo * n].reshape(rows + ones_row, h * wo * n)
            cols[:rows].reshape(c, kh, kw, h, wo, n)[...] = win[:, :, :, y:y + h]
            if ones_row:
                cols[rows] = 1
            yield y, h, cols

    def backward(self, g):
        if self.general:
            return self.general_backward(g)
        cols, x, w = self.saved
        xp = get_array_module(g)
        o, c, kh, kw = w.shape
        g = g.transpose(1, 2, 3, 0)  # (O, Ho, Wo, N): no copy when g is laid out like the output
        _, ho, wo, n = g.shape
        has_b = len(self.needs_input_grad) == 3
        want_dx, want_w = self.needs_input_grad[0], any(self.needs_input_grad[1:])
        rows = c * kh * kw
        if cols is not None:  # one band, its columns kept
            bands = [(0, ho, cols)]
        else:
            height = self.backward_height
            if want_w:
                bands = self.bands(windows(pad2d(x, self.padding), kh, kw, self.stride), height, has_b)
            else:  # frozen weights: the input gradient alone, in bands, needs no columns
                bands = ((y, min(height, ho - y), None) for y in range(0, ho, height))
        p, s = self.padding, self.stride
        h, wd = self.x_shape[2:]
        dpad = xp.zeros((c, h + 2 * p, wd + 2 * p, n), dtype=g.dtype) if want_dx else None
        w_t = xp.ascontiguousarray(w.reshape(o, rows).T) if want_dx else None
        grads = xp.zeros((o, rows + has_b), dtype=g.dtype) if want_w else None
        for y, band, cols in bands:
            g2 = g[:, y:y + band].reshape(o, band * wo * n)
            if want_w:  # (O, C·kh·kw) for w, then one column for b if there is a b
                grads += weight_grad(g2, cols)
            if want_dx:
                self.col2im(w_t @ g2, dpad, y, band, wo, kh, kw)
        dx = dpad[:, p:p + h, p:p + wd].transpose(3, 0, 1, 2) if want_dx else None
        dw = grads[:, :rows].reshape(w.shape) if want_w else None
        db = grads[:, rows] if want_w and has_b else None
        return (dx, dw, db)[:len(self.needs_input_grad)]

    def col2im(self, dcols, dpad, y, band, wo, kh, kw):
        """Sum one band's column gradients (C·kh·kw, band·Wo·N), output rows y.., back onto the pixels of
        the padded input gradient `dpad` that each column came from."""
        c, _, _, n = dpad.shape
        dcols = dcols.reshape(c, kh, kw, band, wo, n)
        s = self.stride
        for i, j, (rows, columns) in offsets(kh, kw, band, wo, s):
            dpad[:, rows.start + y * s:rows.stop + y * s:s, columns] += dcols[:, i, j]

    def general_forward(self, x, w, b, stride, padding, dilation, groups):
        """out = W_g X_g for each group g, X_g the im2col columns of its C/groups channels; then + b."""
        xp = get_array_module(x)
        o, _, kh, kw = w.shape
        padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        x = xp.ascontiguousarray(x.transpose(1, 2, 3, 0))  # (C, H, W, N), as in the form above
        win = windows(pad2d(x, padding), kh, kw, stride, dilation)
        c, _, _, ho, wo, n = win.shape
        cols = xp.ascontiguousarray(win).reshape(groups, -1, ho * wo * n)  # (groups, C/groups·kh·kw, K)
        out = (w.reshape(groups, o // groups, -1) @ cols).reshape(o, ho, wo, n)
        if b is not None:
            out += b[:, None, None, None]
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.x_shape = (n, c, *x.shape[1:3])
        self.save_for_backward(cols if self.needs_input_grad[1] else None, w)
        return out.transpose(3, 0, 1, 2)

    def general_backward(self, g):
        """Per group: dW_g = G_g X_gᵀ and dX_g = W_gᵀ G_g, summed back onto the pixels by col2im;  db = Σ g."""
        cols, w = self.saved
        xp = get_array_module(g)
        o, _, kh, kw = w.shape
        n, c, h, wd = self.x_shape
        top, bottom, left, right = self.padding
        g = g.transpose(1, 2, 3, 0)  # (O, Ho, Wo, N)
        ho, wo = g.shape[1:3]
        g3 = g.reshape(self.groups, o // self.groups, -1)
        dx = dw = db = None
        if self.needs_input_grad[0]:
            w3 = w.reshape(self.groups, o // self.groups, -1)
            dcols = (w3.transpose(0, 2, 1) @ g3).reshape(c, kh, kw, ho, wo, n)
            dpad = xp.zeros((c, top + h + bottom, left + wd + right, n), dtype=g.dtype)
            for i, j, (rows, columns) in offsets(kh, kw, ho, wo, self.stride, self.dilation):
                dpad[:, rows, columns] += dcols[:, i, j]
            dx = dpad[:, top:top + h, left:left + wd].transpose(3, 0, 1, 2)
        if self.needs_input_grad[1]:
            dw = (g3 @ cols.transpose(0, 2, 1)).reshape(w.shape)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            db = g.sum(axis=(1, 2, 3))
        return (dx, dw, db)[:len(self.needs_input_grad)]


@register
class MaxPool2d(Function):
    """out[n,c,y,x] = max of the window at (y·s, x·s), its taps d apart;  dx = g / k at each of the k tied
    maxima of a window."""
    def forward(self, x, kernel_size, stride, dilation=1):
        xp = get_array_module(x)
        k, reach = kernel_size, dilation * (kernel_size - 1) + 1
        ho, wo = (x.shape[2] - reach) // stride + 1, (x.shape[3] - reach) // stride + 1
        self.where = [(Ellipsis, *where) for _, _, where in offsets(k, k, ho, wo, stride, dilation)]
        self.overlapping = stride < reach  # then neighbouring windows may share pixels
        self.tiled = dilation == 1 and stride == k and ho * k == x.shape[2] and wo * k == x.shape[3]  # one window each
        # Windows side by side (stride k, no dilation) over an input whose innermost axis in memory is the
        # batch or the channels (as a convolution leaves it): the backward works on the k×k blocks at once.
        # (Measured on the CPU only.)
        self.blocks = dilation == 1 and stride == k and _inner_axis(x) < 2 and not is_cupy_array(x)
        self.kernel_size = k
        out = x[self.where[0]].copy(order="K")  # keep the layout the convolution left
        for where in self.where[1:]:
            xp.maximum(out, x[where], out=out)
        self.save_for_backward(x, out)
        return out

    def backward(self, g):
        x, out = self.saved
        xp = get_array_module(g)
        g = _same_layout(g, out)
        if self.blocks:
            return (self.blocks_backward(x, out, g),)
        masks = [x[where] == out for where in self.where]
        share = g / sum(self.as_counts(m, len(masks), g.dtype) for m in masks)  # split among tied maxima
        dx = xp.empty_like(x) if self.tiled else xp.zeros_like(x)
        for where, mask in zip(self.where, masks):
            if self.overlapping:
                dx[where] += mask * share
            else:
                xp.multiply(mask, share, out=dx[where])
        return (dx,)

    @staticmethod
    def as_counts(mask, terms, dtype):
        """A boolean mask as numbers, `terms` of which are to be added up to count a window's maxima:
        uint8, a free view, while that count stays under 256; otherwise `dtype`."""
        return mask.view(get_array_module(mask).uint8) if terms < 256 else mask.astype(dtype)

    def blocks_backward(self, x, out, g):
        """The same gradient, with the input viewed as (N, C, Ho, k, Wo, k) blocks: one comparison with the
        maxima and one product, each over the whole input in its memory order, where the k² window slices
        above each read every k-th run of the inner axis. Measured on the CPU: 10-33% less time than the
        slices with N innermost (conv outputs of LeNet-5 and the PyTorch example, batch 32 to 512), and
        more with W innermost, which the slices keep."""
        xp = get_array_module(g)
        n, c, ho, wo = out.shape
        k = self.kernel_size
        mask = x[..., :ho * k, :wo * k].reshape(n, c, ho, k, wo, k) == out[:, :, :, None, :, None]
        # Count each window's maxima: a sum of slices, faster here than a reduction over two axes.
        m = self.as_counts(mask, k * k, g.dtype)
        per_row = sum(m[..., j] for j in range(k))  # (N, C, Ho, k, Wo)
        count = sum(per_row[:, :, :, i] for i in range(k))
        share = g / count
        blocks = (mask * share[:, :, :, None, :, None]).reshape(n, c, ho * k, wo * k)
        if self.tiled:
            return blocks
        dx = xp.zeros_like(x)  # rows and columns beyond the last window get no gradient
        dx[..., :ho * k, :wo * k] = blocks
        return dx


@register
class Pad(Function):
    """a with `widths` ((before, after) per axis) of `value` around it;  da = the middle of g."""
    def forward(self, a, widths, value=0.0):
        self.middle = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, a.shape))
        return get_array_module(a).pad(a, widths, constant_values=value)

    def backward(self, g):
        return (g[self.middle],)


@register
class AvgPool2d(Function):
    """out[n,c,y,x] = Σ of the k×k window at (y·s, x·s) / its divisor (k², or the count of real pixels in
    it);  dx = the window's g / divisor added to each of its pixels."""
    def forward(self, x, kernel_size, stride, divisor):
        xp = get_array_module(x)
        k = kernel_size
        ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
        self.where = [(Ellipsis, *where) for _, _, where in offsets(k, k, ho, wo, stride)]
        self.shape, self.divisor = x.shape, divisor
        out = x[self.where[0]].copy()
        for where in self.where[1:]:
            out += x[where]
        return (out / divisor).astype(x.dtype, copy=False)

    def backward(self, g):
        share = (g / self.divisor).astype(g.dtype, copy=False)
        dx = get_array_module(g).zeros(self.shape, dtype=g.dtype)
        for where in self.where:
            dx[where] += share
        return (dx,)


def log_softmax(x, axis):
    """x - log Σ eˣ, shifted by the maximum so that no exponential overflows."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


@register
class LogSoftmax(Function):
    """y = x - logsumexp(x);  dx = g - softmax(x) Σ g."""
    def forward(self, x, axis=-1):
        self.axis = axis
        out = log_softmax(x, axis)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        xp = get_array_module(g)
        (out,) = self.saved
        return (g - xp.exp(out) * g.sum(axis=self.axis, keepdims=True),)


def _accumulator(dtype):
    """The dtype to sum a batch in: float16 overflows past 65504 (a few thousand losses, or N itself)."""
    return "float32" if dtype == "float16" else dtype


@register
class CrossEntropy(Function):
    """Mean over the batch of -Σ_k t_k log softmax(x)_k with t = (1-ε)·onehot(y) + ε/K;
    dx = g (softmax(x) - t) / N. One fused op: stable for any finite logits."""
    def forward(self, logits, labels, label_smoothing=0.0):
        xp = get_array_module(logits)
        n, k = logits.shape
        logp = log_softmax(logits, axis=1)
        rows = xp.arange(n)
        picked = logp[rows, labels]
        acc = _accumulator(logits.dtype)
        loss = -(1 - label_smoothing) * picked.sum(dtype=acc)
        if label_smoothing:  # unsmoothed, the term is 0 · Σ log p, which is NaN once a log p is -inf
            loss -= label_smoothing / k * logp.sum(dtype=acc)
        self.labels, self.smoothing = labels, label_smoothing
        self.save_for_backward(logp)
        return xp.asarray(loss / n, dtype=logits.dtype)

    def backward(self, g):
        xp = get_array_module(g)
        (logp,) = self.saved
        n, k = logp.shape
        d = xp.exp(logp)
        if self.smoothing:
            d -= self.smoothing / k
        d[xp.arange(n), self.labels] -= 1 - self.smoothing
        return (d * (g.astype(_accumulator(g.dtype)) / n).astype(g.dtype),)


@register
class Dropout(Function):
    """x · m / (1 - p) with m ~ Bernoulli(1 - p) drawn per element;  dx = g · m / (1 - p)."""
    def forward(self, x, mask):
        self.save_for_backward(mask)
        return x * mask

    def backward(self, g):
        return (g * self.saved[0],)


def channel_view(a):
    """a (N, C, …) as a 3-D view (A, C, B), each channel's numbers on axes 0 and 2, and the permutation
    that gave it: a's axes in the order of its memory, so that no copy is made. After a convolution,
    whose output lies in (C, H, W, N) order, that is (1, C, H·W·N): each channel one contiguous run.
    An array whose memory is no permutation of its shape is copied to NCHW order first."""
    xp = get_array_module(a)
    order = sorted(range(a.ndim), key=lambda axis: -a.strides[axis])
    t = a.transpose(order)
    if not t.flags.c_contiguous:
        a = xp.ascontiguousarray(a)
        order, t = list(range(a.ndim)), a
    k = order.index(1)
    return t.reshape(math.prod(t.shape[:k]), a.shape[1], -1), order, t.shape


def from_channel_view(v, order, shape):
    """The (N, C, …) array that `v` is the channel_view of (a view, no copy)."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return v.reshape(shape).transpose(inverse)


# Batch norm works through a block of channels at a time, its several passes over a block running in
# cache: about this many bytes of each of the three arrays in flight (input, x̂, output) per block.
BATCHNORM_BLOCK_BYTES = 2 ** 19


def channel_blocks(v, budget=BATCHNORM_BLOCK_BYTES):
    """Slices of the channel axis of the (A, C, B) channel_view v, each block of channels about `budget`
    bytes (at least one channel); one block of all of them on a GPU, which wants few large kernels."""
    channels = v.shape[1]
    step = band_height(1, channels, v.shape[0] * v.shape[2], v, budget)  # the same rule, channels for rows
    return [slice(c, min(c + step, channels)) for c in range(0, channels, step)]


def block_buffer(v, blocks):
    """Scratch room for one block of `blocks` (channel slices of the channel_view v): (A, widest block, B)."""
    return get_array_module(v).empty((v.shape[0], max(c.stop - c.start for c in blocks), v.shape[2]), dtype=v.dtype)


@register
class BatchNorm(Function):
    """y = x̂ γ + β per channel (axis 1), x̂ = (x - μ) / √(σ² + ε), with the batch's own μ and (biased) σ²
    in training (`batch_stats`; then `stats`, a dict, receives them for the running statistics) or the
    given ones otherwise. With batch statistics, over the n numbers of each channel:
    dx = (γ / √(σ²+ε)) (g - Σg / n - x̂ Σ(g x̂) / n),  dγ = Σ g x̂,  dβ = Σ g;  with given ones, dx = g γ / √(σ²+ε).

    The work is done on each channel's numbers where they lie in memory (`channel_view`), a block of
    channels at a time (`channel_blocks`): each pass after the first over a block finds it in cache. The
    op keeps its input for the backward pass, not x̂, which is made again there a block at a time."""
    def forward(self, x, weight=None, bias=None, mean=None, var=None, eps=1e-5, batch_stats=True, stats=None):
        xp = get_array_module(x)
        v, self.order, self.shape = channel_view(x)
        self.batch_stats = batch_stats
        column = (1, -1, 1)
        out = xp.empty(v.shape, dtype=x.dtype)
        if batch_stats:
            mean, var, invstd = self.normalize_in_blocks(v, weight, bias, eps, out)
            if stats is not None:
                stats.update(mean=mean, var=var)
            scale = invstd if weight is None else weight * invstd
        else:  # one multiply-add; x̂ is made again in the backward pass if γ needs it
            invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
            scale = invstd if weight is None else weight * invstd
            shift = -mean * scale if weight is None else bias - mean * scale
            xp.multiply(v, scale.reshape(column), out=out)
            out += shift.reshape(column)
        # The input, not x̂: the graph holds the input anyway, and x̂ is made again, a block at a time in
        # cache, in the backward pass, so that no array of the input's size is kept for this op alone.
        self.save_for_backward(v, scale, weight)
        self.mean, self.invstd = mean, invstd
        return from_channel_view(out, self.order, self.shape)

    @staticmethod
    def normalize_in_blocks(v, weight, bias, eps, out):
        """out = x̂ γ + β for the channel_view v with its own statistics, a block of channels at a time, x̂
        in a block-sized scratch buffer; returns the batch's mean, (biased) variance and 1/√(σ²+ε)."""
        xp = get_array_module(v)
        column = (1, -1, 1)
        acc, n = _accumulator(v.dtype), v.shape[0] * v.shape[2]
        mean, var, invstd = (xp.empty(v.shape[1], dtype=v.dtype) for _ in range(3))
        blocks = channel_blocks(v)
        xhat = block_buffer(v, blocks)
        for c in blocks:
            vc, xc, oc = v[:, c], xhat[:, :c.stop - c.start], out[:, c]
            mean[c] = vc.sum(axis=(0, 2), dtype=acc) / n
            xp.subtract(vc, mean[c].reshape(column), out=xc)
            xp.multiply(xc, xc, out=oc)  # the squared deviations, in the output's block until it is written
            var[c] = oc.sum(axis=(0, 2), dtype=acc) / n
            invstd[c] = 1 / xp.sqrt(var[c] + eps)
            xc *= invstd[c].reshape(column)
            if weight is None:
                oc[...] = xc
            else:
                xp.multiply(xc, weight[c].reshape(column), out=oc)
                oc += bias[c].reshape(column)
        return mean, var, invstd

    def backward(self, g):
        xp = get_array_module(g)
        saved, scale, weight = self.saved
        column = (1, -1, 1)
        g = g.transpose(self.order).reshape(saved.shape)  # a copy only when g is laid out unlike x
        want_dx, want_affine = self.needs_input_grad[0], weight is not None and any(self.needs_input_grad[1:])
        if not self.batch_stats:
            dx = from_channel_view(g * scale.reshape(column), self.order, self.shape) if want_dx else None
            if weight is None:
                return (dx,)
            if not want_affine:
                return dx, None, None
            xhat = (saved - self.mean.reshape(column)) * self.invstd.reshape(column)
            return dx, (g * xhat).sum(axis=(0, 2)), g.sum(axis=(0, 2))
        n, blocks = g.shape[0] * g.shape[2], channel_blocks(g)
        grad = xp.empty(g.shape, dtype=g.dtype)  # g x̂, for Σ g x̂, then dx in the same block
        xhat = block_buffer(g, blocks)
        sum_g, sum_gx = xp.empty(g.shape[1], dtype=g.dtype), xp.empty(g.shape[1], dtype=g.dtype)
        for c in blocks:
            gc, xc, dc = g[:, c], xhat[:, :c.stop - c.start], grad[:, c]
            xp.subtract(saved[:, c], self.mean[c].reshape(column), out=xc)  # x̂ again, as the forward made it
            xc *= self.invstd[c].reshape(column)
            sum_g[c] = gc.sum(axis=(0, 2))
            xp.multiply(gc, xc, out=dc)
            sum_gx[c] = dc.sum(axis=(0, 2))
            if want_dx:  # μ and σ² depend on x too
                xp.multiply(xc, (-sum_gx[c] / n).reshape(column), out=dc)
                dc += gc
                dc -= (sum_g[c] / n).reshape(column)
                dc *= scale[c].reshape(column)
        dx = from_channel_view(grad, self.order, self.shape) if want_dx else None
        if weight is None:
            return (dx,)
        return dx, sum_gx, sum_g


BCE_EPSILON = float(np.float32(1e-12))  # PyTorch's, a float constant: 1e-12 rounded to float32


@register
class BinaryCrossEntropy(Function):
    """ℓ = -(y max(ln x, -100) + (1-y) max(ln(1-x), -100)) elementwise, the logs clamped as PyTorch does;
    dx = g (x - y) / max(x (1-x), 1e-12),  dy = g (ln(1-x) - ln x), PyTorch's VJPs: dx stays finite where
    x reaches 0 or 1, where the derivative of the clamped logs would overflow or vanish."""
    def forward(self, x, y):
        xp = get_array_module(x)
        self.save_for_backward(x, y)
        with np.errstate(divide="ignore"):  # ln 0 = -inf, then clamped
            log_x, log_1mx = xp.maximum(xp.log(x), -100), xp.maximum(xp.log1p(-x), -100)
        return (y - 1) * log_1mx - y * log_x

    def backward(self, g):
        xp = get_array_module(g)
        x, y = self.saved
        dx = g * (x - y) / xp.maximum(x * (1 - x), BCE_EPSILON) if self.needs_input_grad[0] else None
        dy = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):  # ±inf at x = 0 or 1, as PyTorch's
                dy = g * (xp.log1p(-x) - xp.log(x))
        return dx, dy


@register
class ConvTranspose2d(Function):
    """out = col2im(Wᵀ X) + b: each input pixel adds its channels times the kernel into the output at
    (y·s + i·d - p, x·s + j·d - p), w (C_in, C_out/groups, kh, kw) — the input gradient of conv2d, as a
    forward. Its VJP is conv2d's forward and weight gradient on the padded g:  with G the im2col columns
    of g (its windows at stride s, dilation d),  dX = W G  and  dW = X Gᵀ per group,  db = Σ g.
    Layout as in Conv2d: the work runs in (C, H, W, N) order and the output keeps it behind its NCHW shape."""
    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1):
        xp = get_array_module(x)
        c_in, per_group, kh, kw = w.shape
        n, _, h, wd = x.shape
        c_out = per_group * groups
        (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        size = [(side - 1) * s - 2 * p + d * (k - 1) + op + 1 for side, s, p, d, k, op in
                zip((h, wd), stride, padding, dilation, (kh, kw), output_padding)]
        # The canvas every tap lands on, with room below and right for output padding past the last tap.
        canvas = [(side - 1) * s + d * (k - 1) + 1 + max(0, op - p) for side, s, d, k, op, p in
                  zip((h, wd), stride, dilation, (kh, kw), output_padding, padding)]
        x3 = xp.ascontiguousarray(x.transpose(1, 2, 3, 0)).reshape(groups, c_in // groups, h * wd * n)
        w3 = w.reshape(groups, c_in // groups, per_group * kh * kw)
        cols = (w3.transpose(0, 2, 1) @ x3).reshape(c_out, kh, kw, h, wd, n)
        out = xp.zeros((c_out, *canvas, n), dtype=x.dtype)
        for i, j, where in offsets(kh, kw, h, wd, stride, dilation):
            out[(slice(None), *where)] += cols[:, i, j]
        out = out[:, ph:ph + size[0], pw:pw + size[1]]
        if b is not None:
            out += b[:, None, None, None]
        self.shape, self.kernel, self.canvas = x.shape, w.shape, canvas
        self.settings = stride, padding, dilation, groups
        self.save_for_backward(x3 if self.needs_input_grad[1] else None, w3)
        return out.transpose(3, 0, 1, 2)

    def backward(self, g):
        x3, w3 = self.saved
        xp = get_array_module(g)
        stride, (ph, pw), dilation, groups = self.settings
        n, c_in, h, wd = self.shape
        c_out, ho, wo = g.shape[1:]
        canvas = xp.zeros((c_out, *self.canvas, n), dtype=g.dtype)
        canvas[:, ph:ph + ho, pw:pw + wo] = g.transpose(1, 2, 3, 0)
        _, _, kh, kw = self.kernel
        win = windows(canvas, kh, kw, stride, dilation)[:, :, :, :h, :wd]
        cols = xp.ascontiguousarray(win).reshape(groups, (c_out // groups) * kh * kw, h * wd * n)
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dx = (w3 @ cols).reshape(c_in, h, wd, n).transpose(3, 0, 1, 2)
        if self.needs_input_grad[1]:
            dw = (x3 @ cols.transpose(0, 2, 1)).reshape(self.kernel)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            db = g.sum(axis=(0, 2, 3))
        return (dx, dw, db)[:len(self.needs_input_grad)]
