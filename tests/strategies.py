"""Random graphs of ops for the property tests: one table of builders, one builder for each op in `OPS`.

A graph is a plain description, a list of nodes (leaves and steps) that two interpreters run: our engine
through its public API (operators, Tensor methods, `functional`) and PyTorch. The generator evaluates
each step as it draws it, so it can keep every op where it is smooth: the inputs of log, div and
fractional or negative powers are shifted to 0.5 and above, ReLU inputs are shifted away from 0, the
inputs of max and max-pool are spread so that no two values lie within 1e-3 of each other, and every
value that later ops may reuse is scaled back into [-4, 4] (a maximum's shifted input, which scaling
could bring back to its other input, feeds that maximum alone). Those repairs are steps of the graph
(an add or a mul by a constant), so the repaired tensor is the one that later ops reuse.

Each op's inputs are drawn among all the tensors made so far (leaves and results, the latest most
likely), so intermediates and leaves feed several ops at different depths, weights get shared, and
broadcasting pairs meet; after an op, a skip connection may combine its result with one of its
ancestors (x + f(x), either side first). The loss adds the weighted sums of the last result, maybe of
another tensor, and of an ancestor of the last result, so every graph has a tensor reached along paths
of different lengths. A sort that marks tensors when first pushed gets such a graph wrong when the
tensor is an op's earlier input and is reached again through a later one, as x in x + f(x).
"""
import functools
import math
import warnings
from collections import namedtuple

import numpy as np
from hypothesis import strategies as st

import tinygrad_mnist as tg
import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, manual_seed, ops

Leaf = namedtuple("Leaf", "value requires_grad")  # value: a float64 array (a constant if not requires_grad)
Step = namedtuple("Step", "op inputs options")  # inputs: indices of earlier nodes
Graph = namedtuple("Graph", "nodes")  # the last node is the loss, a scalar

LIMIT = 4.0  # every value that later ops may pick stays within [-LIMIT, LIMIT]
GAP = 1e-3  # the least distance between two inputs of a max, or of a ReLU input from 0


def dropout_mask(p, seed, shape):
    """The scaled float64 mask that F.dropout draws after manual_seed(seed). Both frameworks, and runs in
    every dtype, apply this one mask (F.dropout would draw another one in float32)."""
    manual_seed(seed)
    return F.dropout(Tensor(np.ones(shape)), p).numpy()


def _batch_norm(affine, inputs):
    """(weight, bias) of a batch_norm step from its extra inputs, as `affine` says which are there."""
    given = iter(inputs)
    return tuple(next(given) if affine in (which, "both") else None for which in ("weight", "bias"))


def _ours_batchnorm(x, *affine_inputs, mean, var, training, affine):
    weight, bias = _batch_norm(affine, affine_inputs)
    # Fresh running statistics each time: in training batch_norm updates them in place.
    return F.batch_norm(x, mean.astype(x.dtype), var.astype(x.dtype), weight, bias, training=training, eps=1e-3)


OURS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "neg": lambda a: -a,
    "pow": lambda a, *b, exponent=None: a ** (b[0] if b else exponent),
    "matmul": lambda a, b: a @ b,
    "sum": lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims),
    "max": lambda a, axis, keepdims: a.max(axis=axis, keepdims=keepdims),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.permute(*axes),
    "exp": lambda a: a.exp(),
    "log": lambda a, base=None: {None: a.log, 2: a.log2, 10: a.log10}[base](),
    "log1p": lambda a: a.log1p(),
    "expm1": lambda a: a.expm1(),
    "erf": lambda a: a.erf(),
    "relu": lambda a: a.relu(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "linear": lambda x, w, *b: F.linear(x, w, *b),
    "conv2d": lambda x, w, *b, **options: F.conv2d(x, w, *b, **options),
    "maxpool2d": lambda x, kernel_size, stride, **options: F.max_pool2d(x, kernel_size, stride, **options),
    "logsoftmax": lambda a, axis: F.log_softmax(a, axis=axis),
    "crossentropy": lambda z, labels, label_smoothing: F.cross_entropy(z, labels, label_smoothing=label_smoothing),
    "dropout": lambda x, p, seed: ops.Dropout.apply(x, mask=dropout_mask(p, seed, x.shape).astype(x.dtype)),
    "batchnorm": _ours_batchnorm,
    "maximum": lambda a, b: tg.maximum(a, b),
    "where": lambda a, b, condition: tg.where(condition, a, b),
    "cat": lambda *ts, dim: tg.cat(list(ts), dim=dim),
    "expand": lambda a, shape: a.expand(*shape),
    "index": lambda a, key: a[key],
    "cast": lambda a: a.clone(),
    "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(),
    "prod": lambda a, dim, keepdim: a.prod(dim=dim, keepdim=keepdim),
    "cumsum": lambda a, dim: a.cumsum(dim),
    "gelu": lambda a, approximate: F.gelu(a, approximate=approximate),
    "pad": lambda a, pad, value: F.pad(a, pad, value=value),
    "avgpool2d": lambda x, kernel_size, stride, padding, **options: F.avg_pool2d(x, kernel_size, stride, padding,
                                                                                  **options),
    "binarycrossentropy": lambda x, y, reduction: F.binary_cross_entropy(x, y, reduction=reduction),
    "convtranspose2d": lambda x, w, *b, **options: F.conv_transpose2d(x, w, *b, **options),
}


@functools.lru_cache(maxsize=None)
def theirs():
    """The same table for PyTorch (imported on first use: the tests that need it skip without it)."""
    import torch
    TF = torch.nn.functional
    array = lambda a, like: torch.from_numpy(np.asarray(a, dtype=str(like.dtype).replace("torch.", "")))

    def all_axes(a, axis):
        return tuple(range(a.ndim)) if axis is None else axis

    def max_(a, axis, keepdims):
        if a.ndim == 0:
            return a * 1
        return torch.amax(a, dim=all_axes(a, axis), keepdim=keepdims)  # no ties here: its tie rule does not matter

    def batchnorm(x, *affine_inputs, mean, var, training, affine):
        weight, bias = _batch_norm(affine, affine_inputs)
        return TF.batch_norm(x, array(mean, x), array(var, x), weight, bias, training=training, eps=1e-3)

    def conv2d(x, w, *b, **options):
        with warnings.catch_warnings():  # torch's note that padding='same' with an even reach copies the input
            warnings.filterwarnings("ignore", "Using padding='same'")
            return TF.conv2d(x, w, *b, **options)

    return {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "neg": lambda a: -a,
        "pow": lambda a, *b, exponent=None: a ** (b[0] if b else exponent),
        "matmul": lambda a, b: a @ b,
        "sum": lambda a, axis, keepdims: a.sum(dim=all_axes(a, axis), keepdim=keepdims) if a.ndim else a * 1,
        "max": max_,
        "reshape": lambda a, shape: a.reshape(shape),
        "transpose": lambda a, axes: a.permute(*axes),
        "exp": torch.exp,
        "log": lambda a, base=None: {None: torch.log, 2: torch.log2, 10: torch.log10}[base](a),
        "log1p": torch.log1p,
        "expm1": torch.expm1,
        "erf": torch.erf,
        "relu": torch.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "linear": lambda x, w, *b: TF.linear(x, w, *b),
        "conv2d": conv2d,
        "maxpool2d": lambda x, kernel_size, stride, **options: TF.max_pool2d(x, kernel_size, stride, **options),
        "logsoftmax": lambda a, axis: TF.log_softmax(a, dim=axis),
        "crossentropy": lambda z, labels, label_smoothing: TF.cross_entropy(z, torch.from_numpy(labels),
                                                                           label_smoothing=label_smoothing),
        "dropout": lambda x, p, seed: x * array(dropout_mask(p, seed, tuple(x.shape)), x),
        "batchnorm": batchnorm,
        "maximum": torch.maximum,
        "where": lambda a, b, condition: torch.where(torch.from_numpy(condition), a, b),
        "cat": lambda *ts, dim: torch.cat(ts, dim=dim),
        "expand": lambda a, shape: a.expand(shape),
        "index": lambda a, key: a[tuple(torch.from_numpy(k) if isinstance(k, np.ndarray) else k for k in key)],
        "cast": lambda a: a.clone(),
        "sin": torch.sin,
        "cos": torch.cos,
        "prod": lambda a, dim, keepdim: torch.prod(a) if dim is None else torch.prod(a, dim, keepdim),
        "cumsum": lambda a, dim: torch.cumsum(a, dim),
        "gelu": lambda a, approximate: TF.gelu(a, approximate=approximate),
        "pad": lambda a, pad, value: TF.pad(a, pad, value=value),
        "avgpool2d": lambda x, kernel_size, stride, padding, **options: TF.avg_pool2d(x, kernel_size, stride,
                                                                                    padding, **options),
        "binarycrossentropy": lambda x, y, reduction: TF.binary_cross_entropy(x, y, reduction=reduction),
        "convtranspose2d": lambda x, w, *b, **options: TF.conv_transpose2d(x, w, *b, **options),
    }


def run(graph, leaves, constant, table):
    """The value of every node: `leaves` stand for the leaves that require grad (in order), `constant`
    makes the others, and each step applies its op from `table` (OURS or theirs())."""
    values, given = [], iter(leaves)
    for node in graph.nodes:
        if isinstance(node, Leaf):
            values.append(next(given) if node.requires_grad else constant(node.value))
        else:
            values.append(table[node.op](*(values[i] for i in node.inputs), **node.options))
    return values


def ours(graph, dtype=np.float64):
    """(loss_fn, leaves) for our engine: leaves are new tensors for the graph's leaves that require grad,
    and loss_fn(*leaves) builds the graph on them and returns its loss."""
    leaves = [Tensor(n.value, dtype=dtype, requires_grad=True) for n in graph.nodes
              if isinstance(n, Leaf) and n.requires_grad]
    return (lambda *ts: run(graph, ts, lambda a: Tensor(a, dtype=dtype), OURS)[-1]), leaves


def torch_loss_and_gradients(graph):
    """The graph's loss and its gradient with respect to each leaf that requires grad, by PyTorch in float64."""
    import torch
    leaves = [torch.tensor(n.value, dtype=torch.float64, requires_grad=True) for n in graph.nodes
              if isinstance(n, Leaf) and n.requires_grad]
    loss = run(graph, leaves, lambda a: torch.tensor(a, dtype=torch.float64), theirs())[-1]
    loss.backward()
    unused = np.zeros  # a leaf the loss does not depend on gets no gradient
    return loss.detach().item(), [t.grad.numpy() if t.grad is not None else unused(t.shape) for t in leaves]


def leaf_count(graph):
    return sum(n.value.size for n in graph.nodes if isinstance(n, Leaf) and n.requires_grad)


class GraphBuilder:
    """The graph being drawn, with the float64 value of each node (from our engine, recording nothing)."""

    def __init__(self, draw):
        self.draw, self.nodes, self.values, self.tracked = draw, [], [], []  # tracked: nodes that reach a leaf

    def _add(self, node, value):
        self.nodes.append(node)
        self.values.append(value)
        return len(self.nodes) - 1

    def random(self, shape, low=-2.0, high=2.0):
        return np.random.default_rng(self.draw(st.integers(0, 2**32 - 1))).uniform(low, high, size=shape)

    def leaf(self, shape, low=-2.0, high=2.0):
        value = self.random(shape, low, high)
        i = self._add(Leaf(value, True), value)
        self.tracked.append(i)
        return i

    def constant(self, array):
        array = np.asarray(array, dtype=np.float64)
        return self._add(Leaf(array, False), array)

    def apply(self, op, *inputs, bound=True, **options):
        """A new step; with `bound`, its value brought into [-LIMIT, LIMIT] by one more step where it was not."""
        value = OURS[op](*(Tensor(self.values[i]) for i in inputs), **options).numpy()
        i = self._add(Step(op, inputs, options), value)
        self.tracked.append(i)
        return self.bounded(i, LIMIT) if bound else i

    def scaled(self, i, factor):
        return self.apply("mul", i, self.constant(factor))

    def pick(self, ok=lambda v: True, otherwise=None, among=None):
        """A tensor made so far (and in `among`, if given) whose value satisfies `ok`, the latest most
        likely; if there is none, otherwise() (or None)."""
        candidates = [i for i in self.tracked if ok(self.values[i]) and (among is None or i in among)]
        if not candidates:
            return otherwise() if otherwise else None
        return candidates[-1 - self.draw(st.integers(0, len(candidates) - 1))]

    def pick_or_leaf(self, shape):
        """A tensor of exactly `shape` made so far (a shared weight), or a new leaf."""
        if self.draw(st.booleans()):
            i = self.pick(lambda v: v.shape == shape)
            if i is not None:
                return i
        return self.leaf(shape)

    def reshaped(self, i, shape):
        return i if self.values[i].shape == shape else self.apply("reshape", i, shape=shape)

    def positive(self, i, low=0.5):
        """i, or i shifted so that its least value is `low`."""
        least = self.values[i].min()
        return i if least >= low else self.apply("add", i, self.constant(low - least))

    def bounded(self, i, limit):
        largest = np.abs(self.values[i]).max(initial=0.0)
        return i if largest <= limit else self.scaled(i, limit / largest)

    def away_from_zero(self, i):
        """i, or i shifted so that 0 falls in the middle of the widest gap between its values."""
        v = np.sort(self.values[i].ravel())
        if np.abs(v).min() >= 10 * GAP:
            return i
        gaps = np.diff(v)
        if gaps.size and gaps.max() >= 20 * GAP:
            k = int(gaps.argmax())
            zero = (v[k] + v[k + 1]) / 2
        else:
            zero = v[0] - 0.5  # all values (nearly) equal: put them all on the positive side
        return self.apply("sub", i, self.constant(zero))

    def distinct(self, i):
        """i, or i scaled down and added to a random permutation of 0, 1/n, ..., so that no two of its
        values are within GAP (then no max and no max-pool window ties within a finite-difference step)."""
        v = self.values[i]
        if v.size < 2 or np.diff(np.sort(v.ravel())).min() >= GAP:
            return i
        spread = np.random.default_rng(self.draw(st.integers(0, 2**32 - 1))).permutation(v.size) / v.size
        small = self.scaled(i, 0.25 / (v.size * max(np.abs(v).max(), 1.0)))  # gaps of at least 0.5 / n
        return self.apply("add", small, self.constant(spread.reshape(v.shape)))

    def image(self, i):
        """i reshaped to (N, C, H, W), keeping its shape when it is one already."""
        v = self.values[i]
        if v.ndim == 4:
            return i
        n = self.draw(st.sampled_from([d for d in (1, 2) if v.size % d == 0]))
        c = self.draw(st.sampled_from([d for d in (1, 2, 3) if (v.size // n) % d == 0]))
        rest = v.size // (n * c)
        h = self.draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        return self.reshaped(i, (n, c, h, rest // h))


def shapes(max_dims=3, max_side=4):
    return st.lists(st.integers(1, max_side), max_size=max_dims).map(tuple)


def broadcast_partner(draw, full):
    """A shape that broadcasts against `full`: some leading axes dropped, some axes set to 1."""
    keep = draw(st.integers(0, len(full)))
    return tuple(1 if draw(st.booleans()) else n for n in full[len(full) - keep:])


def _broadcasts(a, b):
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def binary(op, repair_b=None):
    """a op b, either side first, with b of a shape that broadcasts against a's: a new leaf, another
    earlier tensor, or an ancestor of a (a skip connection, as in x + f(x))."""
    def build(g):
        a = g.pick()
        shape = g.values[a].shape
        fits = lambda v: _broadcasts(v.shape, shape)
        source = g.draw(st.sampled_from(["leaf", "earlier", "ancestor"]))
        b = None
        if source == "earlier":
            b = g.pick(fits)
        elif source == "ancestor":
            b = g.pick(fits, among=ancestors(g.nodes, a))
        if b is None:
            b = g.leaf(broadcast_partner(g.draw, shape))
        if g.draw(st.booleans()):
            a, b = b, a
        return g.apply(op, a, repair_b(g, b) if repair_b else b)
    return build


def unary(op, repair=None):
    def build(g):
        a = g.pick()
        return g.apply(op, repair(g, a) if repair else a)
    return build


def axis_and_keepdims(draw, ndim):
    if ndim == 0:
        return None, draw(st.booleans())
    axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))
    return axis, draw(st.booleans())


def build_pow(g):
    """a ** p for a constant p, a ** b for a positive tensor base, or 2 ** b for a tensor exponent."""
    kind = g.draw(st.sampled_from(["constant exponent", "tensor base", "constant base"]))
    if kind == "constant exponent":
        exponent = g.draw(st.sampled_from([2, 3, -1, -2, 0.5, 1.5]))
        a = g.pick()
        if exponent < 0 or exponent != int(exponent):
            a = g.positive(a)
        return g.apply("pow", a, exponent=exponent)
    b = g.bounded(g.pick(), 1.5)
    a = g.constant(2.0) if kind == "constant base" else g.positive(g.pick_or_leaf(g.values[b].shape))
    return g.apply("pow", a, b)


def pair_that_broadcasts(g):
    """A tensor made so far, and one whose shape broadcasts against it: another earlier tensor or a new leaf."""
    a = g.pick()
    shape = g.values[a].shape
    b = g.pick(lambda v: _broadcasts(v.shape, shape)) if g.draw(st.booleans()) else None
    return a, b if b is not None else g.leaf(broadcast_partner(g.draw, shape))


def build_maximum(g):
    """maximum(a, b), b of a broadcasting shape, shifted by a constant where a and b nearly meet (the kink)."""
    a, b = pair_that_broadcasts(g)
    d = np.sort((g.values[a] - g.values[b]).ravel())
    if np.abs(d).min() < 10 * GAP:
        gaps = np.diff(d)
        k = int(gaps.argmax()) if gaps.size else 0
        shift = (d[k] + d[k + 1]) / 2 if gaps.size and gaps[k] >= 20 * GAP else d[0] - 0.5
        # a - (b + shift) = d - shift: no value near 0. Not brought back into [-LIMIT, LIMIT]: that
        # rescales b and not a, and may bring them together again. Unbounded, it feeds this maximum alone.
        b = g.apply("add", b, g.constant(shift), bound=False)
        g.tracked.remove(b)
    if g.draw(st.booleans()):
        a, b = b, a
    return g.apply("maximum", a, b)


def build_where(g):
    a, b = pair_that_broadcasts(g)
    condition = np.asarray(g.random(np.broadcast_shapes(g.values[a].shape, g.values[b].shape)) > 0)
    return g.apply("where", a, b, condition=condition)


def build_cat(g):
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.leaf((g.draw(st.integers(1, 3)),)))
    shape = g.values[a].shape
    dim = g.draw(st.integers(-len(shape), len(shape) - 1))
    fits = lambda v: v.ndim == len(shape) and all(n == m for k, (n, m) in enumerate(zip(v.shape, shape))
                                                  if k != dim % len(shape))
    others = [g.pick(fits) if g.draw(st.booleans()) else None for _ in range(g.draw(st.integers(1, 2)))]
    others = [o if o is not None else g.leaf(shape[:dim % len(shape)] + (g.draw(st.integers(1, 3)),)
                                               + shape[dim % len(shape) + 1:]) for o in others]
    order = [a, *others]
    if g.draw(st.booleans()):
        order.reverse()
    return g.apply("cat", *order, dim=dim)


def build_expand(g):
    a = g.pick()
    shape = g.values[a].shape
    lead = tuple(g.draw(st.integers(1, 3)) for _ in range(g.draw(st.integers(0, 1))))
    target = lead + tuple(g.draw(st.integers(1, 3)) if n == 1 else g.draw(st.sampled_from([n, -1])) for n in shape)
    return g.apply("expand", a, shape=target)


def build_index(g):
    """x[key] for a key of each kind PyTorch takes: an int, a stepped or negative slice, None and ...,
    an integer array with repeats (whose gradient accumulates), a boolean mask, rows and columns."""
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.leaf((g.draw(st.integers(1, 4)),)))
    shape = g.values[a].shape
    n = shape[0]
    kinds = ["int", "slice", "none and ellipsis", "integer array", "mask"] + (["rows and columns"] if len(shape) >= 2 else [])
    kind = g.draw(st.sampled_from(kinds))
    if kind == "int":
        key = (g.draw(st.integers(-n, n - 1)),)
    elif kind == "slice":
        start = g.draw(st.integers(0, n - 1))
        stop, step = g.draw(st.integers(start + 1, n)), g.draw(st.integers(1, 2))
        key = (slice(start - n if g.draw(st.booleans()) else start, stop, step),)
    elif kind == "none and ellipsis":
        key = (None, Ellipsis, g.draw(st.integers(-shape[-1], shape[-1] - 1)))
    elif kind == "integer array":
        key = (np.asarray(g.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)), dtype=np.int64),)
    elif kind == "mask":
        mask = g.random(shape) > 0
        mask.flat[g.draw(st.integers(0, mask.size - 1))] = True
        key = (mask,)
    else:
        count = g.draw(st.integers(1, 4))
        rows = np.asarray(g.draw(st.lists(st.integers(0, n - 1), min_size=count, max_size=count)), dtype=np.int64)
        cols = np.asarray(g.draw(st.lists(st.integers(0, shape[1] - 1), min_size=count, max_size=count)),
                          dtype=np.int64)
        key = (rows, cols)
    return g.apply("index", a, key=key)


def build_prod(g):
    a = g.bounded(g.pick(), 1.5)  # a product of many values stays finite in float32 too
    ndim = g.values[a].ndim
    dim = g.draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1))) if ndim else None
    return g.apply("prod", a, dim=dim, keepdim=g.draw(st.booleans()) if dim is not None else False)


def build_cumsum(g):
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.reshaped(g.pick(), (1,)))  # 0-d: a copy, no Cumsum
    ndim = g.values[a].ndim
    return g.apply("cumsum", a, dim=g.draw(st.integers(-ndim, ndim - 1)))


def build_pad(g):
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.leaf((g.draw(st.integers(1, 3)),)))
    sides = g.draw(st.integers(1, min(g.values[a].ndim, 2)))
    pad = tuple(g.draw(st.integers(0, 2)) for _ in range(2 * sides))
    return g.apply("pad", a, pad=pad, value=g.draw(st.sampled_from([0.0, 0.5])))


def build_avgpool2d(g):
    x = g.image(g.pick())
    h, w = g.values[x].shape[2:]
    kernel = g.draw(st.integers(1, min(h, w, 3)))
    return g.apply("avgpool2d", x, kernel_size=kernel, stride=g.draw(st.sampled_from([None, 1, 2])),
                   padding=g.draw(st.integers(0, kernel // 2)), count_include_pad=g.draw(st.booleans()),
                   ceil_mode=g.draw(st.booleans()))


def build_matmul(g):
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.leaf((g.draw(st.integers(1, 3)),)))
    k = g.values[a].shape[-1]
    b = g.pick(lambda v: v.ndim in (1, 2) and v.shape[0] == k) if g.draw(st.booleans()) else None
    if b is None:
        b = g.leaf(g.draw(st.sampled_from([(k,), (k, g.draw(st.integers(1, 3)))])))
    return g.apply("matmul", a, b)


def build_sum(g):
    a = g.pick()
    axis, keepdims = axis_and_keepdims(g.draw, g.values[a].ndim)
    return g.apply("sum", a, axis=axis, keepdims=keepdims)


def build_max(g):
    a = g.distinct(g.pick())
    axis, keepdims = axis_and_keepdims(g.draw, g.values[a].ndim)
    return g.apply("max", a, axis=axis, keepdims=keepdims)


def build_reshape(g):
    a = g.pick()
    v = g.values[a]
    n = v.size
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    d = g.draw(st.sampled_from(divisors))
    target = g.draw(st.sampled_from([(-1,), (d, -1), (n // d, 1, d), v.shape[::-1] or (1,)]))
    return g.apply("reshape", a, shape=target)


def build_transpose(g):
    a = g.pick(lambda v: v.ndim >= 2)
    if a is None:
        a = g.pick()
        size = g.values[a].size
        a = g.reshaped(a, (size, 1) if g.draw(st.booleans()) else (1, size))
    axes = tuple(g.draw(st.permutations(range(g.values[a].ndim))))
    return g.apply("transpose", a, axes=axes)


def build_linear(g):
    x = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.leaf((g.draw(st.integers(1, 3)),)))
    fan_out, fan_in = g.draw(st.integers(1, 3)), g.values[x].shape[-1]
    w = g.pick_or_leaf((fan_out, fan_in))
    bias = g.draw(st.booleans())
    return g.apply("linear", x, w, *([g.pick_or_leaf((fan_out,))] if bias else []))


def conv2d_settings(draw, channels, height, width, max_kernel=3, max_per_group=2):
    """(weight shape, options) of a random conv2d on `channels` maps of height×width, among everything
    PyTorch takes: stride, padding and dilation as ints or (rows, columns) pairs, padding 'valid' or
    'same' (then stride 1; an even reach puts the odd zero at the bottom or right), groups dividing the
    channels (out channels a multiple of it). The kernel always fits the padded input."""
    groups = draw(st.sampled_from([d for d in range(1, channels + 1) if channels % d == 0]))
    dilation = draw(st.sampled_from([1, 2, 3, (1, 2), (2, 1)]))
    sides = st.integers(0, 2)
    padding = draw(draw(st.sampled_from([sides, st.tuples(sides, sides), st.just("valid"), st.just("same")])))
    steps = st.integers(1, 3)
    stride = 1 if padding == "same" else draw(st.one_of(steps, st.tuples(steps, steps)))
    as_pair = lambda v: v if isinstance(v, tuple) else (v, v)

    def kernel(side, p, d):  # a reach d·(k-1) + 1 within the padded side; 'same' pads for any kernel
        return draw(st.integers(1, max_kernel if padding == "same" else min(max_kernel, (side + 2 * p - 1) // d + 1)))
    pad = (0, 0) if isinstance(padding, str) else as_pair(padding)
    kh, kw = (kernel(side, p, d) for side, p, d in zip((height, width), pad, as_pair(dilation)))
    out_channels = groups * draw(st.integers(1, max_per_group))
    return (out_channels, channels // groups, kh, kw), dict(stride=stride, padding=padding, dilation=dilation,
                                                             groups=groups)


def build_conv2d(g):
    x = g.image(g.pick())
    _, c, h, w = g.values[x].shape
    if g.draw(st.booleans()):  # the fast form: square stride and padding, no dilation, one group
        padding, stride = g.draw(st.integers(0, 1)), g.draw(st.integers(1, 2))
        kh, kw = (g.draw(st.integers(1, min(side + 2 * padding, 3))) for side in (h, w))
        shape, options = (g.draw(st.integers(1, 3)), c, kh, kw), dict(stride=stride, padding=padding)
    else:
        shape, options = conv2d_settings(g.draw, c, h, w)
    weight = g.pick_or_leaf(shape)
    bias = [g.pick_or_leaf(shape[:1])] if g.draw(st.booleans()) else []
    return g.apply("conv2d", x, weight, *bias, **options)


def build_maxpool2d(g):
    x = g.distinct(g.image(g.pick()))
    h, w = g.values[x].shape[2:]
    dilation = g.draw(st.sampled_from([1, 1, 2]))
    kernel = g.draw(st.integers(1, max(1, min(3, (min(h, w) - 1) // dilation + 1))))
    return g.apply("maxpool2d", x, kernel_size=kernel, stride=g.draw(st.sampled_from([None, 1, 2])),
                   dilation=dilation, ceil_mode=g.draw(st.booleans()))


def build_logsoftmax(g):
    a = g.pick(lambda v: v.ndim >= 1, otherwise=lambda: g.reshaped(g.pick(), (1,)))
    return g.apply("logsoftmax", a, axis=g.draw(st.integers(-g.values[a].ndim, g.values[a].ndim - 1)))


def build_crossentropy(g):
    z = g.pick(lambda v: v.size >= 2, otherwise=lambda: g.leaf((g.draw(st.integers(1, 3)), 2)))
    size = g.values[z].size
    n = g.draw(st.sampled_from([d for d in range(1, size // 2 + 1) if size % d == 0]))
    z = g.reshaped(z, (n, size // n))
    labels = np.asarray(g.draw(st.lists(st.integers(0, size // n - 1), min_size=n, max_size=n)), dtype=np.int64)
    return g.apply("crossentropy", z, labels=labels, label_smoothing=g.draw(st.sampled_from([0.0, 0.1])))


def build_dropout(g):
    return g.apply("dropout", g.pick(), p=g.draw(st.sampled_from([0.25, 0.5])), seed=g.draw(st.integers(0, 1000)))


def build_batchnorm(g):
    training = g.draw(st.booleans())
    least = 2 if training else 1  # values per channel: batch statistics need two
    x = g.pick()
    v = g.values[x]
    if not (v.ndim in (2, 3, 4) and v.size // v.shape[1] >= least):
        rows = [n for n in range(least, v.size + 1) if v.size % n == 0]
        x = g.reshaped(x, (g.draw(st.sampled_from(rows)), -1)) if rows else g.leaf((2, g.draw(st.integers(1, 3))))
    c = g.values[x].shape[1]
    affine = g.draw(st.sampled_from(["none", "both", "weight", "bias"]))
    extra = [g.pick_or_leaf((c,)) for _ in range({"none": 0, "both": 2}.get(affine, 1))]
    return g.apply("batchnorm", x, *extra, mean=g.random((c,)), var=g.random((c,), 0.5, 2.0),
                   training=training, affine=affine)



def conv_transpose2d_settings(draw, channels, height, width, max_kernel=3, max_per_group=2):
    """(weight shape, options) of a random conv_transpose2d on `channels` maps of height×width, among
    everything PyTorch takes: stride, padding, output_padding and dilation as ints or (rows, columns) pairs,
    groups dividing the channels (out channels a multiple of it), output_padding below the stride or the
    dilation, and padding small enough to leave an output of at least one pixel."""
    groups = draw(st.sampled_from([d for d in range(1, channels + 1) if channels % d == 0]))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(2))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = tuple(draw(st.integers(0, min(2, ((side - 1) * s + d * (k - 1)) // 2)))
                    for side, s, d, k in zip((height, width), stride, dilation, kernel))
    pair_or_int = lambda v: v[0] if v[0] == v[1] and draw(st.booleans()) else v
    options = dict(stride=pair_or_int(stride), padding=pair_or_int(padding),
                   output_padding=pair_or_int(output_padding), dilation=pair_or_int(dilation), groups=groups)
    return (channels, draw(st.integers(1, max_per_group)), *kernel), options


def build_convtranspose2d(g):
    x = g.image(g.pick())
    _, c, h, w = g.values[x].shape
    shape, options = conv_transpose2d_settings(g.draw, c, h, w)
    weight = g.pick_or_leaf(shape)
    bias = [g.pick_or_leaf((shape[1] * options["groups"],))] if g.draw(st.booleans()) else []
    return g.apply("convtranspose2d", x, weight, *bias, **options)


def build_binarycrossentropy(g):
    """binary_cross_entropy of probabilities in (0.04, 0.96) (a sigmoid of a tensor made so far, brought into
    [-3, 3]), against constant targets in [0, 1] or probabilities that a leaf or earlier tensor gives."""
    x = g.apply("sigmoid", g.bounded(g.pick(), 3.0))
    shape = g.values[x].shape
    if g.draw(st.booleans()):
        y = g.constant(g.random(shape, 0.0, 1.0))
    else:
        y = g.apply("sigmoid", g.bounded(g.pick_or_leaf(shape), 3.0))
    return g.apply("binarycrossentropy", x, y, reduction=g.draw(st.sampled_from(["mean", "sum", "none"])))


BUILDERS = {
    "add": binary("add"),
    "sub": binary("sub"),
    "mul": binary("mul"),
    "div": binary("div", repair_b=lambda g, b: g.positive(b)),
    "neg": unary("neg"),
    "pow": build_pow,
    "matmul": build_matmul,
    "sum": build_sum,
    "max": build_max,
    "reshape": build_reshape,
    "transpose": build_transpose,
    "exp": unary("exp", lambda g, a: g.bounded(a, 2.0)),
    "log": lambda g: g.apply("log", g.positive(g.pick()), base=g.draw(st.sampled_from([None, 2, 10]))),
    "log1p": unary("log1p", lambda g, a: g.positive(a, low=-0.5)),
    "expm1": unary("expm1", lambda g, a: g.bounded(a, 2.0)),
    "erf": unary("erf"),
    "relu": unary("relu", lambda g, a: g.away_from_zero(a)),
    "tanh": unary("tanh"),
    "sigmoid": unary("sigmoid"),
    "linear": build_linear,
    "conv2d": build_conv2d,
    "maxpool2d": build_maxpool2d,
    "logsoftmax": build_logsoftmax,
    "crossentropy": build_crossentropy,
    "dropout": build_dropout,
    "batchnorm": build_batchnorm,
    "maximum": build_maximum,
    "where": build_where,
    "cat": build_cat,
    "expand": build_expand,
    "index": build_index,
    "cast": unary("cast"),
    "sin": unary("sin"),
    "cos": unary("cos"),
    "prod": build_prod,
    "cumsum": build_cumsum,
    "gelu": lambda g: g.apply("gelu", g.pick(), approximate=g.draw(st.sampled_from(["none", "tanh"]))),
    "pad": build_pad,
    "avgpool2d": build_avgpool2d,
    "binarycrossentropy": build_binarycrossentropy,
    "convtranspose2d": build_convtranspose2d,
}


def ancestors(nodes, i):
    """The nodes that node i depends on (not i itself)."""
    seen, stack = set(), [i]
    while stack:
        node = nodes[stack.pop()]
        for j in node.inputs if isinstance(node, Step) else ():
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def skip_connection(g, r):
    """r combined with one of its ancestors x whose shape broadcasts against r's, as in x + f(x), either
    side first (no step if there is none)."""
    x = g.pick(lambda v: _broadcasts(v.shape, g.values[r].shape), among=ancestors(g.nodes, r))
    if x is not None:
        pair = (x, r) if g.draw(st.booleans()) else (r, x)
        g.apply(g.draw(st.sampled_from(["add", "sub", "mul"])), *pair)


@st.composite
def graphs(draw, featured=None, max_steps=5):
    """A random graph (see the module's docstring) of up to `max_steps` random ops, and of the op named
    `featured` at a random place among them."""
    g = GraphBuilder(draw)
    for _ in range(draw(st.integers(1, 2))):
        g.leaf(draw(shapes()))
    ops = [draw(st.sampled_from(sorted(BUILDERS))) for _ in range(draw(st.integers(1, max_steps)))]
    if featured is not None:
        place = draw(st.integers(0, len(ops)))
        ops.insert(place, featured)
    results = []
    for op in ops:
        results.append(BUILDERS[op](g))
        if draw(st.booleans()):
            skip_connection(g, results[-1])
    last = g.tracked[-1]
    outputs = [last]
    if featured is not None and results[place] not in ancestors(g.nodes, last) | {last}:
        outputs.append(results[place])  # the featured op is on the tape, whatever came after it
    if draw(st.booleans()):
        outputs.append(g.pick())
    # An ancestor of the last result, added last: reached along that short path and through the last result.
    outputs.append(draw(st.sampled_from(sorted(set(g.tracked) & ancestors(g.nodes, last)))))
    weighted = [g.apply("mul", i, g.constant(g.random(g.values[i].shape)), bound=False) for i in outputs]
    terms = [g.apply("sum", i, axis=None, keepdims=False, bound=False) for i in weighted]
    rest, tap = functools.reduce(lambda a, b: g.apply("add", a, b, bound=False), terms[:-1]), terms[-1]
    loss = g.apply("add", *((rest, tap) if draw(st.booleans()) else (tap, rest)), bound=False)
    assert g.values[loss].shape == () and math.isfinite(g.values[loss])
    return Graph(g.nodes)
