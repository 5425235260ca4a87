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
    exponent = draw(st.sampled_from([-2, -1, 0.5, 1.5, 2, 3]))
    return lambda a: a ** exponent, [leaf(values(draw, shape(draw), 0.5, 2.0), device)]


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
case_log = unary("log", lambda d, s: values(d, s, 0.2, 3.0))
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
    n, c, h, w = image_batch(draw, device)
    padding = draw(st.integers(0, 2))
    kh = draw(st.integers(1, min(h + 2 * padding, 4)))
    kw = draw(st.integers(1, min(w + 2 * padding, 4)))
    stride = draw(st.integers(1, 3))
    out_channels = draw(st.sampled_from([1, 2, 3, 6, 9]))  # every form of weight_grad and forward_gemm
    x = leaf(values(draw, (n, c, h, w)), device)
    weight = leaf(values(draw, (out_channels, c, kh, kw)), device)
    if draw(st.booleans()):
        return (lambda x, k, b: F.conv2d(x, k, b, stride=stride, padding=padding),
                [x, weight, leaf(values(draw, (out_channels,)), device)])
    return lambda x, k: F.conv2d(x, k, stride=stride, padding=padding), [x, weight]


def case_maxpool2d(draw, device):
    n, c, h, w = image_batch(draw, device)
    kernel = draw(st.integers(1, min(h, w, 3)))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    return lambda x: F.max_pool2d(x, kernel, stride), [leaf(distinct(draw, (n, c, h, w)), device)]


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
    dims = draw(st.sampled_from([(n, c), (n, c, h, w)]))
    training = draw(st.booleans())
    x = leaf(values(draw, dims), device)
    mean, var = Tensor(values(draw, (c,)), device=device), Tensor(values(draw, (c,), 0.5, 2.0), device=device)
    if draw(st.booleans()):
        gamma, beta = leaf(values(draw, (c,)), device), leaf(values(draw, (c,)), device)
        return (lambda x, g, b: F.batch_norm(x, mean, var, g, b, training=training, eps=1e-3),
                [x, gamma, beta])
    return lambda x: F.batch_norm(x, mean, var, training=training, eps=1e-3), [x]


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
