"""Every differentiable op's VJP agrees with central finite differences (float64), on random shapes and values.

`CASES` maps each op in the engine's op table to a function that draws one random example with
hypothesis: (fn, inputs). `COMPOSITES` does the same for functions built from several ops.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import OPS, Tensor, gradcheck, manual_seed

from strategies import conv2d_settings, conv_transpose2d_settings

EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(draw, shape, low=-2.0, high=2.0):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(low, high, size=shape)


def away_from_zero(draw, shape, gap=0.05):
    """Values with |x| >= gap, so a kink at 0 is never within the finite-difference step."""
    magnitude = values(draw, shape, gap, 2.0)
    return magnitude * np.where(values(draw, shape) < 0, -1.0, 1.0)


def distinct(draw, shape, gap=0.01):
    """Values no two of which are closer than `gap`, so a maximum never ties within the step."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).reshape(shape)


def shape(draw, min_dims=1, max_dims=3, max_side=4):
    return tuple(draw(st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims)))


def broadcast_partner(draw, full):
    """A shape that broadcasts against `full`: leading axes dropped, some axes set to 1."""
    keep = draw(st.integers(0, len(full)))
    partner = list(full[len(full) - keep:])
    for i in range(len(partner)):
        if draw(st.booleans()):
            partner[i] = 1
    return tuple(partner)


def leaf(array, device):
    return Tensor(array, requires_grad=True, dtype=np.float64, device=device)


def binary(draw, device, make_b=values):
    a_shape = shape(draw)
    b_shape = broadcast_partner(draw, a_shape)
    if draw(st.booleans()):  # either side may be the smaller one
        a_shape, b_shape = b_shape, a_shape
    return leaf(values(draw, a_shape), device), leaf(make_b(draw, b_shape), device)


def image_batch(draw, device, max_side=7, max_channels=3):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, max_channels))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return n, c, h, w


def case_add(draw, device):
    a, b = binary(draw, device)
    return lambda a, b: a + b, [a, b]


def case_sub(draw, device):
    a, b = binary(draw, device)
    return lambda a, b: a - b, [a, b]


def case_mul(draw, device):
    a, b = binary(draw, device)
    return lambda a, b: a * b, [a, b]


def case_div(draw, device):
    a, b = binary(draw, device, make_b=lambda d, s: away_from_zero(d, s, gap=0.5))
    return lambda a, b: a / b, [a, b]


def case_neg(draw, device):
    return lambda a: -a, [leaf(values(draw, shape(draw)), device)]


def case_pow(draw, device):
    kind = draw(st.sampled_from(["number", "tensor", "base"]))
    if kind == "number":
        exponent = draw(st.sampled_from([-2, -1, 0.5, 1.5, 2, 3]))
        return lambda a: a ** exponent, [leaf(values(draw, shape(draw), 0.5, 2.0), device)]
    if kind == "base":  # 2 ** x: a number raised to a tensor
        return lambda b: 2.0 ** b, [leaf(values(draw, shape(draw)), device)]
    a, b = binary(draw, device)
    a.array[...] = abs(a.array) + 0.5  # a positive base: a^b is real and smooth in both
    return lambda a, b: a ** b, [a, b]


def case_maximum(draw, device):
    from tinygrad_mnist import maximum
    a, b = binary(draw, device)  # independent continuous values: they tie (the kink) with probability 0
    return lambda a, b: maximum(a, b), [a, b]


def case_where(draw, device):
    from tinygrad_mnist import where
    a, b = binary(draw, device)
    full = np.broadcast_shapes(a.shape, b.shape)
    condition = values(draw, full) > 0
    return lambda a, b: where(condition, a, b), [a, b]


def case_expand(draw, device):
    x = values(draw, shape(draw))
    small = tuple(1 if draw(st.booleans()) else n for n in x.shape)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    target = lead + tuple(-1 if draw(st.booleans()) else n for n in x.shape)
    return lambda a: a.expand(*target), [leaf(x[tuple(slice(0, n) for n in small)], device)]


def index_key(draw, shape):
    """A random key of every kind PyTorch users write: ints (negative too), slices with steps, None, ...,
    integer arrays with repeated entries, boolean masks, and (rows, labels) pairs."""
    kind = draw(st.sampled_from(["basic", "ellipsis", "integers", "mask", "pairs"]))
    if kind == "basic":
        key = []
        for n in shape[:draw(st.integers(1, len(shape)))]:
            if draw(st.booleans()):
                key.append(draw(st.integers(-n, n - 1)))
            else:
                bound = st.one_of(st.none(), st.integers(-n, n))
                key.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1, -2]))))
        if draw(st.booleans()):
            key.insert(draw(st.integers(0, len(key))), None)
        return tuple(key)
    if kind == "ellipsis":
        return (Ellipsis, draw(st.integers(-shape[-1], shape[-1] - 1)))
    if kind == "integers":
        return np.asarray(draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6)))
    if kind == "mask":
        return np.asarray(draw(st.lists(st.booleans(), min_size=shape[0], max_size=shape[0])))
    rows = np.asarray(draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5)))
    other = np.asarray(draw(st.lists(st.integers(0, shape[-1] - 1), min_size=len(rows), max_size=len(rows))))
    return (rows, Ellipsis, other) if len(shape) > 1 else (rows,)


def case_index(draw, device):
    x = values(draw, shape(draw))
    key = index_key(draw, x.shape)
    return lambda a: a[key], [leaf(x, device)]


def case_cat(draw, device):
    from tinygrad_mnist import cat
    base = shape(draw)
    dim = draw(st.integers(-len(base), len(base) - 1))
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(base)
        s[dim] = draw(st.integers(1, 3))
        pieces.append(leaf(values(draw, tuple(s)), device))
    return lambda *xs: cat(xs, dim), pieces


def case_cast(draw, device):
    fn = draw(st.sampled_from([lambda a: a.clone() * a, lambda a: a.double() * a]))
    return fn, [leaf(values(draw, shape(draw)), device)]


def case_matmul(draw, device):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch = shape(draw, min_dims=0, max_dims=2, max_side=3)
    a_shape = draw(st.sampled_from([(k,), (n, k), batch + (n, k)]))
    b_shape = draw(st.sampled_from([(k,), (k, m), broadcast_partner(draw, batch) + (k, m)]))
    return lambda a, b: a @ b, [leaf(values(draw, a_shape), device), leaf(values(draw, b_shape), device)]


def axis_and_keepdims(draw, ndim):
    axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          st.lists(st.integers(0, ndim - 1), min_size=1, unique=True).map(tuple)))
    return axis, draw(st.booleans())


def case_sum(draw, device):
    x = values(draw, shape(draw))
    axis, keepdims = axis_and_keepdims(draw, x.ndim)
    return lambda a: a.sum(axis=axis, keepdims=keepdims), [leaf(x, device)]


def case_max(draw, device):
    x = distinct(draw, shape(draw))
    axis, keepdims = axis_and_keepdims(draw, x.ndim)
    return lambda a: a.max(axis=axis, keepdims=keepdims), [leaf(x, device)]


def case_reshape(draw, device):
    x = values(draw, shape(draw))
    target = draw(st.sampled_from([(-1,), (x.size, 1), (1, -1), x.shape[::-1]]))
    return lambda a: a.reshape(target), [leaf(x, device)]


def case_transpose(draw, device):
    x = values(draw, shape(draw, max_dims=4))
    axes = tuple(draw(st.permutations(range(x.ndim))))
    return lambda a: a.transpose(axes), [leaf(x, device)]


def unary(method, make=values):
    def case(draw, device):
        return lambda a: getattr(a, method)(), [leaf(make(draw, shape(draw)), device)]
    return case


case_exp = unary("exp")


def case_log(draw, device):
    method = draw(st.sampled_from(["log", "log2", "log10"]))  # one op, with base e, 2 or 10
    return lambda a: getattr(a, method)(), [leaf(values(draw, shape(draw), 0.2, 3.0), device)]


case_log1p = unary("log1p", lambda d, s: values(d, s, -0.8, 3.0))
case_expm1 = unary("expm1")
case_erf = unary("erf", lambda d, s: values(d, s, -3.0, 3.0))
case_relu = unary("relu", away_from_zero)
case_tanh = unary("tanh", lambda d, s: values(d, s, -3.0, 3.0))
case_sigmoid = unary("sigmoid", lambda d, s: values(d, s, -6.0, 6.0))


def case_linear(draw, device):
    lead = shape(draw, min_dims=1, max_dims=2)
    fan_in, fan_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    x, w = leaf(values(draw, lead + (fan_in,)), device), leaf(values(draw, (fan_out, fan_in)), device)
    if draw(st.booleans()):
        return lambda x, w, b: F.linear(x, w, b), [x, w, leaf(values(draw, (fan_out,)), device)]
    return lambda x, w: F.linear(x, w), [x, w]


def case_conv2d(draw, device):
    if draw(st.booleans()):  # every PyTorch setting: dilation, groups, 'same' and 'valid', pairs
        n, c, h, w = image_batch(draw, device, max_channels=4)
        w_shape, options = conv2d_settings(draw, c, h, w)
    else:  # the fast form: square stride and padding, no dilation, one group
        n, c, h, w = image_batch(draw, device)
        padding = draw(st.integers(0, 2))
        kh = draw(st.integers(1, min(h + 2 * padding, 4)))
        kw = draw(st.integers(1, min(w + 2 * padding, 4)))
        out_channels = draw(st.sampled_from([1, 2, 3, 6, 9]))  # every form of weight_grad and gemm_weights
        w_shape, options = (out_channels, c, kh, kw), dict(stride=draw(st.integers(1, 3)), padding=padding)
    x = leaf(values(draw, (n, c, h, w)), device)
    weight = leaf(values(draw, w_shape), device)
    if draw(st.booleans()):
        return lambda x, k, b: F.conv2d(x, k, b, **options), [x, weight, leaf(values(draw, w_shape[:1]), device)]
    return lambda x, k: F.conv2d(x, k, **options), [x, weight]


def case_maxpool2d(draw, device):
    n, c, h, w = image_batch(draw, device)
    dilation = draw(st.sampled_from([1, 1, 2]))
    kernel = draw(st.integers(1, max(1, min(3, (min(h, w) - 1) // dilation + 1))))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    ceil_mode = draw(st.booleans())  # a partial last window, as PyTorch counts them
    return (lambda x: F.max_pool2d(x, kernel, stride, dilation=dilation, ceil_mode=ceil_mode),
            [leaf(distinct(draw, (n, c, h, w)), device)])


def case_logsoftmax(draw, device):
    x = values(draw, shape(draw), -5.0, 5.0)
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return lambda a: F.log_softmax(a, axis=axis), [leaf(x, device)]


def case_crossentropy(draw, device):
    n, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
    labels = np.asarray(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.5]))
    return (lambda z: F.cross_entropy(z, labels, label_smoothing=smoothing),
            [leaf(values(draw, (n, k), -5.0, 5.0), device)])


def case_dropout(draw, device):
    p = draw(st.sampled_from([0.1, 0.5, 0.9]))
    seed = draw(st.integers(0, 1000))

    def fn(a):
        manual_seed(seed)  # the same mask on every evaluation
        return F.dropout(a, p, training=True)
    return fn, [leaf(values(draw, shape(draw)), device)]


def case_batchnorm(draw, device):
    n, c, h, w = image_batch(draw, device, max_side=3)
    n = draw(st.integers(2, 4))
    dims = draw(st.sampled_from([(n, c), (n, c, w), (n, c, h, w)]))
    training = draw(st.booleans())
    x = leaf(values(draw, dims), device)
    mean, var = Tensor(values(draw, (c,)), device=device), Tensor(values(draw, (c,), 0.5, 2.0), device=device)
    if draw(st.booleans()):
        gamma, beta = leaf(values(draw, (c,)), device), leaf(values(draw, (c,)), device)
        return (lambda x, g, b: F.batch_norm(x, mean, var, g, b, training=training, eps=1e-3),
                [x, gamma, beta])
    return lambda x: F.batch_norm(x, mean, var, training=training, eps=1e-3), [x]


case_sin = unary("sin")
case_cos = unary("cos")


def case_prod(draw, device):
    x = values(draw, shape(draw))
    if draw(st.booleans()):  # an exact zero: the gradient must not divide by it
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = 0.0
    dim = draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdim = draw(st.booleans())
    return lambda a: a.prod(dim, keepdim), [leaf(x, device)]


def case_cumsum(draw, device):
    x = values(draw, shape(draw))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    return lambda a: a.cumsum(dim), [leaf(x, device)]


def case_gelu(draw, device):
    approximate = draw(st.sampled_from(["none", "tanh"]))
    return lambda a: F.gelu(a, approximate=approximate), [leaf(values(draw, shape(draw), -4.0, 4.0), device)]


def case_pad(draw, device):
    x = values(draw, shape(draw))
    widths = draw(st.lists(st.integers(0, 2), min_size=2, max_size=2 * x.ndim).filter(lambda w: len(w) % 2 == 0))
    value = draw(st.sampled_from([0.0, -1.5]))
    return lambda a: F.pad(a, widths, value=value), [leaf(x, device)]


def case_avgpool2d(draw, device):
    n, c, h, w = image_batch(draw, device)
    kernel = draw(st.integers(1, min(h, w, 3)))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    padding = draw(st.integers(0, kernel // 2))
    include, ceil_mode = draw(st.booleans()), draw(st.booleans())
    return (lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=include),
            [leaf(values(draw, (n, c, h, w)), device)])


def case_binarycrossentropy(draw, device):
    n = shape(draw)
    x = leaf(values(draw, n, 0.05, 0.95), device)  # away from 0 and 1, where the logs are clamped
    y = values(draw, n, 0.0, 1.0)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    weight = Tensor(values(draw, n[-1:], 0.5, 2.0), device=device) if draw(st.booleans()) else None
    if draw(st.booleans()):  # the target's gradient too
        return lambda x, y: F.binary_cross_entropy(x, y, weight, reduction), [x, leaf(y, device)]
    return lambda x: F.binary_cross_entropy(x, Tensor(y, device=device), weight, reduction), [x]


def case_convtranspose2d(draw, device):
    n, c, h, w = image_batch(draw, device, max_side=4, max_channels=4)
    w_shape, options = conv_transpose2d_settings(draw, c, h, w)
    x, weight = leaf(values(draw, (n, c, h, w)), device), leaf(values(draw, w_shape), device)
    if draw(st.booleans()):
        bias = leaf(values(draw, (w_shape[1] * options["groups"],)), device)
        return lambda x, k, b: F.conv_transpose2d(x, k, b, **options), [x, weight, bias]
    return lambda x, k: F.conv_transpose2d(x, k, **options), [x, weight]


CASES = {name[len("case_"):]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def composite_mean(draw, device):
    x = values(draw, shape(draw))
    axis, keepdims = axis_and_keepdims(draw, x.ndim)
    return lambda a: a.mean(axis=axis, keepdims=keepdims), [leaf(x, device)]


def composite_softmax(draw, device):
    return lambda a: F.softmax(a, axis=-1), [leaf(values(draw, shape(draw)), device)]


def composite_flatten(draw, device):
    x = values(draw, shape(draw, min_dims=2, max_dims=4))
    return lambda a: a.flatten(1) * a.flatten(1), [leaf(x, device)]


def composite_reused_node(draw, device):
    return lambda a: (a * a + a.exp() * a).tanh(), [leaf(values(draw, shape(draw)), device)]


def composite_mlp_loss(draw, device):
    n = draw(st.integers(1, 4))
    labels = np.asarray(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    x = leaf(values(draw, (n, 4)), device)
    w1, w2 = leaf(values(draw, (5, 4)), device), leaf(values(draw, (3, 5)), device)
    return lambda x, w1, w2: F.cross_entropy(F.linear(F.linear(x, w1).tanh(), w2), labels), [x, w1, w2]


def composite_min_max_dim(draw, device):
    x = distinct(draw, shape(draw, min_dims=2))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    return lambda a: a.max(dim).values * a.min(dim, keepdim=True).values.sum(), [leaf(x, device)]


def composite_statistics(draw, device):
    x = values(draw, shape(draw, max_dims=2) + (3,))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    return lambda a: a.var(dim) + a.std(dim) + a.logsumexp(dim) + a.norm(dim=dim), [leaf(x, device)]


def composite_clamp_abs(draw, device):
    return lambda a: a.clamp(-1.0, 0.5) * a.abs(), [leaf(away_from_zero(draw, shape(draw)), device)]


def composite_activations(draw, device):
    return (lambda a: F.leaky_relu(a, 0.1) + F.elu(a) + F.silu(a) + F.softplus(a),
            [leaf(away_from_zero(draw, shape(draw)), device)])


def composite_losses(draw, device):
    n, k = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    labels = np.asarray(draw(st.lists(st.integers(-1, k - 1), min_size=n, max_size=n)))  # -1 is ignored
    weight = Tensor(values(draw, (k,), 0.5, 2.0), device=device)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = draw(st.sampled_from([0.0, 0.2]))
    if (labels == -1).all() and reduction == "mean":
        labels[0] = 0
    return (lambda z: F.cross_entropy(z, labels, weight=weight, ignore_index=-1, reduction=reduction,
                                      label_smoothing=smoothing) + F.mse_loss(z, z * 0.5, reduction="sum"),
            [leaf(values(draw, (n, k), -3.0, 3.0), device)])


def composite_layer_norm_and_adaptive_pool(draw, device):
    x = values(draw, (2, 2, 5, 4))
    w, b = leaf(values(draw, (4,)), device), leaf(values(draw, (4,)), device)
    size = draw(st.sampled_from([1, 2, 3, (2, 3)]))
    return lambda x, w, b: F.adaptive_avg_pool2d(F.layer_norm(x, 4, w, b), size), [leaf(x, device), w, b]


def composite_products(draw, device):
    n, k, m, b = (draw(st.integers(1, 4)) for _ in range(4))
    name = draw(st.sampled_from(["mm", "bmm", "mv", "dot", "outer"]))
    shapes = {"mm": [(n, k), (k, m)], "bmm": [(b, n, k), (b, k, m)], "mv": [(n, k), (k,)], "dot": [(k,), (k,)],
              "outer": [(n,), (m,)]}[name]
    return lambda x, y: getattr(x, name)(y), [leaf(values(draw, s), device) for s in shapes]


def composite_rounding_has_gradient_zero(draw, device):
    # floor(a) · a has the gradient floor(a): floor's own is 0. The values sit at k/10 + 0.03, at least 0.02
    # from every step of the rounding functions (whole numbers, and round(decimals=1)'s k/10 + 0.05), so the
    # central differences never straddle one.
    name = draw(st.sampled_from(["floor", "ceil", "round", "trunc", "sign"]))
    x = values(draw, shape(draw))
    x = np.floor(x * 10) / 10 + 0.03
    return lambda a: getattr(a, name)() * a + a.round(decimals=1), [leaf(x, device)]


def composite_flip_tril_triu(draw, device):
    x = values(draw, shape(draw, min_dims=2))
    dims = draw(st.lists(st.integers(-x.ndim, x.ndim - 1), unique_by=lambda d: d % x.ndim, max_size=x.ndim))
    diagonal = draw(st.integers(-2, 2))
    return lambda a: a.flip(dims).tril(diagonal) + a.triu(-diagonal) * 2, [leaf(x, device)]


def composite_masked_fill(draw, device):
    x = values(draw, shape(draw))
    mask = values(draw, broadcast_partner(draw, x.shape)) > 0
    return (lambda a, v: a.masked_fill(Tensor(mask, device=device), v) * a + a.masked_fill(~mask, 1.5),
            [leaf(x, device), leaf(values(draw, ()), device)])


def composite_gather(draw, device):
    x = values(draw, shape(draw))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    sizes = [draw(st.integers(1, 5)) if d == dim % x.ndim else draw(st.integers(1, n)) for d, n in enumerate(x.shape)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    index = Tensor(rng.integers(0, x.shape[dim], size=sizes), device=device)
    return lambda a: a.gather(dim, index), [leaf(x, device)]  # indices repeat: their gradients add up


def composite_sort_and_topk(draw, device):
    x = distinct(draw, shape(draw))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    k, descending, largest = draw(st.integers(0, x.shape[dim])), draw(st.booleans()), draw(st.booleans())
    return (lambda a: a.sort(dim, descending).values + a.topk(k, dim, largest).values.sum() * a,
            [leaf(x, device)])


def composite_losses_beyond_classification(draw, device):
    n = shape(draw, min_dims=2, max_dims=2, max_side=3)
    z, y = leaf(values(draw, n, -4.0, 4.0), device), leaf(values(draw, n, 0.0, 1.0), device)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    pos_weight = Tensor(values(draw, n[-1:], 0.5, 3.0), device=device)
    other = leaf(z.numpy() + away_from_zero(draw, n, gap=0.1) * 1.3, device)  # |z - other| away from 0 and 1

    def fn(z, y, other):
        return (F.binary_cross_entropy_with_logits(z, y, reduction=reduction, pos_weight=pos_weight)
                + F.smooth_l1_loss(z, other, reduction, beta=0.5) + F.huber_loss(z, other, reduction, delta=1.2)
                + F.kl_div(F.log_softmax(z, 1), F.softmax(other, 1), "batchmean")
                + F.kl_div(z * 0.3, other * 0.3, "sum", log_target=True))
    return fn, [z, y, other]


def composite_activations_beyond_relu(draw, device):
    x = values(draw, shape(draw), -5.0, 5.0)
    kinks = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 6.0])
    near = np.abs(x[..., None] - kinks).min(-1) < 0.05
    x = np.where(near, x + 0.1, x)  # no kink of hardtanh, relu6, hardswish, prelu within the step
    slope = leaf(values(draw, (1,), 0.1, 0.5), device)
    return (lambda a, w: F.hardtanh(a) + F.relu6(a * 2) + F.selu(a) + F.celu(a, 0.5) + F.logsigmoid(a)
            + F.softmin(a, -1) + F.mish(a) + F.hardswish(a) + F.softsign(a) + F.prelu(a, w),
            [leaf(x, device), slope])


def composite_interpolate(draw, device):
    n, c, h, w = image_batch(draw, device, max_side=4)
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "bilinear", "area"]))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    corners = {"align_corners": draw(st.booleans())} if mode == "bilinear" else {}
    return lambda a: F.interpolate(a, size, mode=mode, **corners), [leaf(values(draw, (n, c, h, w)), device)]


def composite_group_norm_and_normalize(draw, device):
    x = values(draw, (2, 4, 1, 1))
    weight, bias = leaf(values(draw, (4,)), device), leaf(values(draw, (4,)), device)
    p = draw(st.sampled_from([1, 2, 3, float("inf")]))
    return lambda x, w, b: F.normalize(F.group_norm(x, 2, w, b, eps=1e-3), p, dim=1), [leaf(x, device), weight, bias]


def composite_embedding_and_cosine_similarity(draw, device):
    # The padding row (2) gets no gradient by definition, while finite differences would see it: the rows
    # picked here leave it out, and test_layers.py checks its gradient against PyTorch's.
    index = np.asarray(draw(st.lists(st.sampled_from([0, 1, 3]), min_size=3, max_size=3)))

    def fn(table):
        return F.cosine_similarity(F.embedding(index, table, padding_idx=2), table[:1])  # broadcast against row 0
    return fn, [leaf(values(draw, (4, 3)), device)]


COMPOSITES = {name[len("composite_"):]: fn for name, fn in list(globals().items()) if name.startswith("composite_")}


def test_every_op_in_the_op_table_has_a_gradient_test():
    assert set(OPS) == set(CASES), f"ops without a gradient test: {sorted(set(OPS) - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
@SETTINGS
@given(data=st.data())
def test_op_gradient_matches_finite_differences(name, data):
    fn, inputs = CASES[name](data.draw, "cpu")
    assert gradcheck(fn, *inputs)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
@SETTINGS
@given(data=st.data())
def test_composite_gradient_matches_finite_differences(name, data):
    fn, inputs = COMPOSITES[name](data.draw, "cpu")
    assert gradcheck(fn, *inputs)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_conv2d_gradient_along_random_directions(data):
    x = leaf(values(data.draw, (2, 3, 9, 8)), "cpu")
    w = leaf(values(data.draw, (4, 3, 3, 3)), "cpu")
    assert gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), x, w, directions=4)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_dilated_grouped_conv2d_gradient_along_random_directions(data):
    x = leaf(values(data.draw, (2, 6, 10, 9)), "cpu")
    w, b = leaf(values(data.draw, (4, 3, 3, 2)), "cpu"), leaf(values(data.draw, (4,)), "cpu")
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(2, 1), dilation=(2, 3), groups=2),
                     x, w, b, directions=4)
