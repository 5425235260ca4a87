"""Forward values against independent references: plain Python loops in NumPy float64 for conv2d and
max_pool2d, the textbook formulas for log_softmax, cross_entropy and batch_norm, and exact values
where the logits are extreme. The tie rule of max and max_pool2d is pinned down here too.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor

SETTINGS = settings(max_examples=30, deadline=None)


def random_array(seed, shape, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def reference_conv2d(x, w, b, stride, padding):
    """out[n,o,y,x] = b[o] + Σ_{c,i,j} xpad[n,c,y·s+i,x·s+j] w[o,c,i,j], one output element at a time."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = w.shape
    xpad = np.zeros((batch, channels, height + 2 * padding, width + 2 * padding))
    xpad[:, :, padding:padding + height, padding:padding + width] = x
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    out = np.zeros((batch, out_channels, out_h, out_w))
    for n in range(batch):
        for o in range(out_channels):
            for y in range(out_h):
                for x_ in range(out_w):
                    total = 0.0 if b is None else b[o]
                    for c in range(channels):
                        for i in range(kh):
                            for j in range(kw):
                                total += xpad[n, c, y * stride + i, x_ * stride + j] * w[o, c, i, j]
                    out[n, o, y, x_] = total
    return out


def reference_max_pool2d(x, k, stride):
    """The maximum of each k×k window every `stride` pixels; windows that would run past the edge are not taken."""
    batch, channels, height, width = x.shape
    out_h, out_w = (height - k) // stride + 1, (width - k) // stride + 1
    out = np.empty((batch, channels, out_h, out_w))
    for n in range(batch):
        for c in range(channels):
            for y in range(out_h):
                for x_ in range(out_w):
                    best = -np.inf
                    for i in range(k):
                        for j in range(k):
                            best = max(best, x[n, c, y * stride + i, x_ * stride + j])
                    out[n, c, y, x_] = best
    return out


def reference_max_pool2d_grad(x, k, stride, g):
    """The gradient of Σ g·max_pool2d(x): each window's g split evenly among the pixels holding its maximum."""
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for y in range(g.shape[2]):
                for x_ in range(g.shape[3]):
                    rows, columns = slice(y * stride, y * stride + k), slice(x_ * stride, x_ * stride + k)
                    ties = x[n, c, rows, columns] == x[n, c, rows, columns].max()
                    dx[n, c, rows, columns] += g[n, c, y, x_] * ties / ties.sum()
    return dx


@st.composite
def conv_cases(draw):
    """(x shape, weight shape, stride, padding, with bias, seed): kernels up to 5×5, any aspect ratio.
    Out channels below, within and above 5-7, so that every form of ops.weight_grad and
    ops.gemm_weights runs."""
    batch, channels = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    out_channels = draw(st.sampled_from([1, 2, 3, 6, 8, 12]))
    height, width = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    padding, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    kh = draw(st.integers(1, min(5, height + 2 * padding)))
    kw = draw(st.integers(1, min(5, width + 2 * padding)))
    return ((batch, channels, height, width), (out_channels, channels, kh, kw), stride, padding,
            draw(st.booleans()), draw(st.integers(0, 2**32 - 1)))


@SETTINGS
@given(case=conv_cases())
@example(case=((1, 1, 7, 5), (2, 1, 3, 2), 1, 0, True, 0))   # non-square input and kernel, batch of 1
@example(case=((1, 3, 7, 5), (3, 3, 3, 2), 2, 1, True, 1))   # ...strided and padded
@example(case=((2, 2, 6, 6), (1, 2, 1, 1), 3, 0, False, 2))  # 1×1 kernel, stride 3
@example(case=((1, 2, 5, 7), (2, 2, 5, 5), 1, 2, True, 3))   # 5×5 kernel, padding 2
@example(case=((1, 1, 2, 3), (1, 1, 5, 5), 2, 2, True, 4))   # kernel larger than the unpadded input
def test_conv2d_matches_the_loop_reference(case):
    x_shape, w_shape, stride, padding, with_bias, seed = case
    x, w = random_array(seed, x_shape), random_array(seed + 1, w_shape)
    b = random_array(seed + 2, w_shape[:1]) if with_bias else None
    out = F.conv2d(Tensor(x), Tensor(w), None if b is None else Tensor(b), stride=stride, padding=padding)
    expected = reference_conv2d(x, w, b, stride, padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@st.composite
def pool_cases(draw):
    """(x shape, kernel, stride, seed) with sides that a window grid need not tile."""
    k, stride = draw(st.sampled_from([2, 3])), draw(st.sampled_from([1, 2, 3]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(k, 8)), draw(st.integers(k, 8)))
    return shape, k, stride, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(case=pool_cases())
@example(case=((1, 1, 7, 5), 2, 2, 0))  # an odd row and column are left over
@example(case=((1, 2, 8, 7), 3, 3, 1))
@example(case=((2, 1, 5, 5), 2, 3, 2))  # stride larger than the kernel skips rows and columns
def test_max_pool2d_matches_the_loop_reference(case):
    shape, k, stride, seed = case
    x = random_array(seed, shape)
    out = F.max_pool2d(Tensor(x), k, stride)
    expected = reference_max_pool2d(x, k, stride)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


def test_max_pool2d_stride_defaults_to_the_kernel_size():
    x = random_array(0, (1, 2, 6, 9))
    np.testing.assert_array_equal(F.max_pool2d(Tensor(x), 3).numpy(), reference_max_pool2d(x, 3, 3))


def test_max_pool2d_drops_rows_and_columns_that_do_not_fill_a_window():
    # 5×7 with 2×2 windows every 2: the last row and column are in no window, as in PyTorch.
    x = np.zeros((1, 1, 5, 7))
    x[0, 0, 4, :] = x[0, 0, :, 6] = 100.0
    t = Tensor(x, requires_grad=True)
    out = F.max_pool2d(t, 2)
    assert out.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(out.numpy(), 0.0)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad[0, 0, 4, :], 0.0)
    np.testing.assert_array_equal(t.grad[0, 0, :, 6], 0.0)


def test_max_pool2d_splits_the_gradient_evenly_among_tied_maxima_of_a_window():
    t = Tensor(np.array([1.0, 3.0, 3.0, 0.0]).reshape(1, 1, 2, 2), requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(t.grad.reshape(-1), [0.0, 0.5, 0.5, 0.0])


def test_max_pool2d_splits_among_all_ties_of_a_window_larger_than_255_pixels():
    t = Tensor(np.ones((1, 1, 16, 16)), requires_grad=True)
    F.max_pool2d(t, 16).sum().backward()
    np.testing.assert_array_equal(t.grad, 1 / 256)


# Memory orders of an (N, C, H, W) tensor, as axes from the outermost: the backward reads windows of the
# first as strided slices, and takes the input as k×k blocks in the others (innermost axis N or C).
LAYOUTS = {"NCHW": (0, 1, 2, 3), "CHWN, as a convolution leaves it": (1, 2, 3, 0), "NHWC": (0, 2, 3, 1)}


@SETTINGS
@given(case=pool_cases(), layout=st.sampled_from(sorted(LAYOUTS)), dtype=st.sampled_from([np.float64, np.float32]))
@example(case=((2, 3, 8, 8), 2, 2, 0), layout="CHWN, as a convolution leaves it", dtype=np.float32)  # tiled
@example(case=((2, 2, 7, 8), 3, 3, 1), layout="NHWC", dtype=np.float64)  # a row and two columns left over
@example(case=((3, 1, 5, 4), 2, 2, 2), layout="CHWN, as a convolution leaves it", dtype=np.float64)
@example(case=((1, 2, 6, 4), 3, 1, 3841042199), layout="CHWN, as a convolution leaves it", dtype=np.float32)
def test_max_pool2d_gradient_matches_the_loop_reference_in_every_memory_layout(case, layout, dtype):
    shape, k, stride, seed = case
    x = np.round(random_array(seed, shape))  # the integers -2 to 2: most windows hold ties
    # The cotangent as the engine gets it, so that only the engine's own sums round.
    g = random_array(seed + 1, reference_max_pool2d(x, k, stride).shape).astype(dtype).astype(np.float64)
    order = LAYOUTS[layout]
    stored = np.ascontiguousarray(x.astype(dtype).transpose(order)).transpose(np.argsort(order))
    t = Tensor(stored, requires_grad=True)
    F.max_pool2d(t, k, stride).backward(Tensor(g.astype(dtype)))
    assert t.grad.dtype == dtype and t.grad.shape == x.shape
    # A pixel sums shares of up to k·k windows' gradients, each at most max|g|: in float32 that sum may
    # round by that many of their ulps, which near-cancelling terms turn into a large relative error.
    atol = k * k * np.abs(g).max() * np.finfo(np.float32).eps if dtype == np.float32 else 1e-7
    np.testing.assert_allclose(t.grad, reference_max_pool2d_grad(x, k, stride, g),
                               rtol=1e-6 if dtype == np.float32 else 1e-12, atol=atol)


def test_max_pool2d_overlapping_windows_each_split_their_own_gradient_among_their_ties():
    # Windows at columns 0-1 and 1-2 each hold two 3s; the middle 3 gets half from each.
    t = Tensor(np.array([[3.0, 3.0, 3.0], [0.0, 0.0, 0.0]]).reshape(1, 1, 2, 3), requires_grad=True)
    F.max_pool2d(t, 2, stride=1).sum().backward()
    np.testing.assert_array_equal(t.grad[0, 0], [[0.5, 1.0, 0.5], [0.0, 0.0, 0.0]])


@SETTINGS
@given(case=pool_cases(), tie_level=st.sampled_from([None, -1.0, 0.0, 0.5]))
def test_relu_after_max_pool2d_is_relu_before_it_in_value_and_gradient(case, tie_level):
    # The models pool first and apply ReLU to the smaller map; that must change nothing, ties included.
    shape, k, stride, seed = case
    x = np.round(random_array(seed, shape), 1)  # coarse values, so windows hold ties
    if tie_level is not None:
        x[..., : k, : k] = tie_level  # a window that is all one value: negative, zero or positive
    g = random_array(seed + 1, F.max_pool2d(Tensor(x), k, stride).shape)
    results = []
    for pool_first in (True, False):
        t = Tensor(x, requires_grad=True)
        out = F.max_pool2d(t, k, stride).relu() if pool_first else F.max_pool2d(t.relu(), k, stride)
        out.backward(g)
        results.append((out.numpy(), t.grad))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_max_splits_the_gradient_evenly_among_tied_maxima():
    t = Tensor(np.array([2.0, 2.0, 1.0]), requires_grad=True)
    t.max().backward()
    np.testing.assert_array_equal(t.grad, [0.5, 0.5, 0.0])


def test_max_along_an_axis_splits_each_rows_gradient_among_that_rows_ties():
    t = Tensor(np.array([[2.0, 2.0, 1.0], [5.0, 5.0, 5.0], [0.0, 1.0, -1.0]]), requires_grad=True)
    t.max(axis=1).backward(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_array_equal(t.grad, [[0.5, 0.5, 0.0], [1.0, 1.0, 1.0], [0.0, 2.0, 0.0]])


def direct_log_softmax(x, axis):
    return np.log(np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True))


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple), data=st.data())
def test_log_softmax_matches_the_direct_formula(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = random_array(data.draw(st.integers(0, 2**32 - 1)), shape, -20.0, 20.0)
    np.testing.assert_allclose(F.log_softmax(Tensor(x), axis=axis).numpy(), direct_log_softmax(x, axis),
                               rtol=1e-12, atol=1e-12)


def direct_cross_entropy(logits, labels, smoothing):
    """Mean over rows of -Σ_k t_k log p_k, with t = (1-ε)·onehot + ε/K (PyTorch's label smoothing)."""
    n, k = logits.shape
    target = (1 - smoothing) * np.eye(k)[labels] + smoothing / k
    return -(target * direct_log_softmax(logits, 1)).sum() / n


@SETTINGS
@given(n=st.integers(1, 6), k=st.integers(2, 6), smoothing=st.sampled_from([0.0, 0.1, 0.3, 1.0]), data=st.data())
def test_cross_entropy_matches_the_direct_formula(n, k, smoothing, data):
    logits = random_array(data.draw(st.integers(0, 2**32 - 1)), (n, k), -10.0, 10.0)
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    loss = F.cross_entropy(Tensor(logits), labels, label_smoothing=smoothing)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), direct_cross_entropy(logits, labels, smoothing), rtol=1e-12, atol=1e-12)


DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

# (logits, axis) -> exact log_softmax and the exact gradient of its sum, 1 - K·softmax.
EXTREME_LOG_SOFTMAX = {
    "huge and tiny": ([1e4, -1e4, 0.0], [0.0, -2e4, -1e4], [-2.0, 1.0, 1.0]),
    "all huge negative": ([-1e4, -1e4], [-np.log(2), -np.log(2)], [0.0, 0.0]),
    "all huge positive": ([1e4, 1e4, 1e4, 1e4], [-np.log(4)] * 4, [0.0] * 4),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(EXTREME_LOG_SOFTMAX))
def test_log_softmax_of_extreme_logits_is_exact_and_finite(case, dtype):
    logits, expected, expected_grad = EXTREME_LOG_SOFTMAX[case]
    t = Tensor(np.array(logits, dtype=dtype), requires_grad=True)
    out = F.log_softmax(t)
    out.sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(t.grad).all()
    np.testing.assert_allclose(out.numpy(), expected, **TOLERANCE[dtype])
    np.testing.assert_allclose(t.grad, expected_grad, **TOLERANCE[dtype])


# (logits, labels, label smoothing) -> exact mean loss and the exact gradient (softmax - target) / N.
EXTREME_CROSS_ENTROPY = {
    "huge correct logit": ([[1e4, -1e4]], [0], 0.0, 0.0, [[0.0, 0.0]]),
    "huge wrong logit": ([[1e4, -1e4]], [1], 0.0, 2e4, [[1.0, -1.0]]),
    "mixed, label on the middle logit": ([[1e4, -1e4, 0.0]], [2], 0.0, 1e4, [[1.0, 0.0, -1.0]]),
    "mixed, smoothed": ([[1e4, -1e4, 0.0]], [0], 0.1, 1e3,
                        [[1 - (0.9 + 0.1 / 3), -0.1 / 3, -0.1 / 3]]),
    "batch of a right and a wrong row": ([[1e4, -1e4], [-1e4, 1e4]], [0, 0], 0.0, 1e4,
                                         [[0.0, 0.0], [-0.5, 0.5]]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(EXTREME_CROSS_ENTROPY))
def test_cross_entropy_of_extreme_logits_is_exact_and_finite(case, dtype):
    logits, labels, smoothing, expected_loss, expected_grad = EXTREME_CROSS_ENTROPY[case]
    t = Tensor(np.array(logits, dtype=dtype), requires_grad=True)
    loss = F.cross_entropy(t, np.array(labels), label_smoothing=smoothing)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(t.grad).all()
    np.testing.assert_allclose(loss.item(), expected_loss, **TOLERANCE[dtype])
    np.testing.assert_allclose(t.grad, expected_grad, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_keeps_the_dtype_of_the_logits(dtype):
    t = Tensor(np.array([[1e4, -1e4, 0.0]], dtype=dtype), requires_grad=True)
    loss = F.cross_entropy(t, np.array([1]), label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == dtype and t.grad.dtype == dtype


BN_SHAPES = [(5, 3), (3, 4, 2), (4, 3, 2, 3)]


def channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def direct_batch_norm(x, mean, var, gamma, beta, eps):
    xhat = (x - per_channel(mean, x)) / np.sqrt(per_channel(var, x) + eps)
    return xhat * per_channel(gamma, x) + per_channel(beta, x)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=["2d", "3d", "4d"])
def test_batch_norm_in_training_normalises_with_the_batch_mean_and_biased_variance(shape):
    x = random_array(0, shape, -3.0, 5.0)
    gamma, beta = random_array(1, shape[1:2]), random_array(2, shape[1:2])
    rm, rv = Tensor(np.zeros(shape[1])), Tensor(np.ones(shape[1]))
    out = F.batch_norm(Tensor(x), rm, rv, Tensor(gamma), Tensor(beta), training=True, eps=1e-5)
    axes = channel_axes(x)
    expected = direct_batch_norm(x, x.mean(axis=axes), x.var(axis=axes), gamma, beta, 1e-5)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=["2d", "3d", "4d"])
def test_batch_norm_in_training_updates_the_running_stats_in_place_with_momentum_and_unbiased_variance(shape):
    x = random_array(0, shape, -3.0, 5.0)
    old_mean, old_var = random_array(1, shape[1:2]), random_array(2, shape[1:2], 0.5, 2.0)
    rm, rv = Tensor(old_mean.copy()), Tensor(old_var.copy())
    arrays = rm.array, rv.array
    F.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.25)
    axes = channel_axes(x)
    count = x.size // shape[1]
    assert rm.array is arrays[0] and rv.array is arrays[1]
    np.testing.assert_allclose(rm.numpy(), 0.75 * old_mean + 0.25 * x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.75 * old_var + 0.25 * x.var(axis=axes) * count / (count - 1), rtol=1e-12)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=["2d", "3d", "4d"])
def test_batch_norm_in_eval_normalises_with_the_running_stats_and_leaves_them_unchanged(shape):
    x = random_array(0, shape, -3.0, 5.0)
    mean, var = random_array(1, shape[1:2]), random_array(2, shape[1:2], 0.5, 2.0)
    gamma, beta = random_array(3, shape[1:2]), random_array(4, shape[1:2])
    rm, rv = Tensor(mean.copy()), Tensor(var.copy())
    out = F.batch_norm(Tensor(x), rm, rv, Tensor(gamma), Tensor(beta), training=False, eps=1e-3)
    np.testing.assert_allclose(out.numpy(), direct_batch_norm(x, mean, var, gamma, beta, 1e-3), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), mean)
    np.testing.assert_array_equal(rv.numpy(), var)


def test_batch_norm_without_affine_parameters_only_normalises():
    x = random_array(0, (6, 2), -3.0, 5.0)
    out = F.batch_norm(Tensor(x), None, None, training=True)
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
