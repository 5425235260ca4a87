"""PyTorch as the oracle: on the same float64 inputs, forward outputs and the gradients of every input agree.

Skipped where PyTorch is not installed (`pip install 'tinygrad_mnist[torch]'`).
"""
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, manual_seed, ops

from strategies import conv2d_settings, conv_transpose2d_settings
from test_reference import conv_cases

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SETTINGS = settings(max_examples=30, deadline=None)
RTOL, ATOL = 1e-10, 1e-12


def random_array(seed, shape, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def assert_matches_torch(ours, theirs, *arrays):
    """Apply `ours` and `theirs` to the same float64 arrays, backpropagate the same random cotangent
    through both, and compare the outputs and the gradient of every input."""
    our_inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    their_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*our_inputs), theirs(*their_inputs)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    cotangent = np.random.default_rng(0).standard_normal(tuple(expected.shape))
    out.backward(cotangent)
    expected.backward(torch.tensor(cotangent))
    for i, (a, b) in enumerate(zip(our_inputs, their_inputs)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}")


seeds = st.integers(0, 2**32 - 1)


@given(case=conv_cases())
@example(case=((2, 3, 7, 5), (4, 3, 3, 2), 2, 1, True, 0))
@example(case=((1, 2, 8, 6), (3, 2, 2, 4), 3, 0, False, 1))
@example(case=((2, 3, 7, 5), (12, 3, 3, 2), 1, 1, True, 2))  # 12 channels, 19 column rows
@example(case=((2, 1, 6, 6), (9, 1, 2, 2), 1, 0, True, 3))  # 9 channels, 5 column rows
def test_conv2d_matches_torch(case):
    x_shape, w_shape, stride, padding, with_bias, seed = case
    arrays = [random_array(seed, x_shape), random_array(seed + 1, w_shape)]
    if with_bias:
        arrays.append(random_array(seed + 2, w_shape[:1]))
    assert_matches_torch(lambda *a: F.conv2d(*a, stride=stride, padding=padding),
                         lambda *a: TF.conv2d(*a, stride=stride, padding=padding), *arrays)


@SETTINGS
@given(case=conv_cases(), budget=st.sampled_from([1, 600, 2000]), min_columns=st.sampled_from([0, 20]),
       frozen=st.sampled_from([None, "input", "weights"]))
@example(case=((2, 3, 7, 5), (6, 3, 3, 2), 2, 1, True, 0), budget=1, min_columns=0, frozen=None)  # a band per row
@example(case=((2, 2, 7, 7), (3, 2, 3, 3), 1, 1, True, 1), budget=600, min_columns=0, frozen="weights")  # dx alone
@example(case=((2, 2, 7, 7), (3, 2, 3, 3), 1, 1, True, 1), budget=1, min_columns=20, frozen=None)  # 2 rows a band
def test_conv2d_in_bands_matches_torch(case, budget, min_columns, frozen):
    """The columns built a few output rows at a time (budgets of a few bytes: one row a band, and
    bands of uneven height, the last one shorter; or as many rows as reach a least number of columns),
    with and without gradients for the input or the weights, agree with PyTorch as the one-band form does."""
    x_shape, w_shape, stride, padding, with_bias, seed = case
    arrays = [random_array(seed, x_shape), random_array(seed + 1, w_shape)]
    if with_bias:
        arrays.append(random_array(seed + 2, w_shape[:1]))
    with mock.patch.object(ops, "FORWARD_BAND_BYTES", budget), mock.patch.object(ops, "BACKWARD_BAND_BYTES", budget), \
            mock.patch.object(ops, "MIN_BAND_COLUMNS", min_columns):
        ours = [Tensor(a.copy(), requires_grad=not (frozen == "input" and k == 0 or frozen == "weights" and k > 0))
                for k, a in enumerate(arrays)]
        theirs = [torch.tensor(a, requires_grad=t.requires_grad) for a, t in zip(arrays, ours)]
        out = F.conv2d(*ours, stride=stride, padding=padding)
        expected = TF.conv2d(*theirs, stride=stride, padding=padding)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
        cotangent = np.random.default_rng(seed).standard_normal(tuple(expected.shape))
        out.backward(cotangent)
    expected.backward(torch.tensor(cotangent))
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if b.requires_grad:
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {k}")
        else:
            assert a.grad is None


@st.composite
def general_conv_cases(draw):
    """(x shape, weight shape, conv2d options, with bias, seed) over every setting PyTorch takes."""
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    w_shape, options = conv2d_settings(draw, *x_shape[1:], max_kernel=4, max_per_group=3)
    return x_shape, w_shape, options, draw(st.booleans()), draw(seeds)


@SETTINGS
@given(case=general_conv_cases())
@example(case=((2, 3, 7, 6), (4, 3, 4, 2), dict(padding="same"), True, 0))  # the odd zero at the bottom, right
@example(case=((1, 4, 9, 9), (4, 1, 3, 3), dict(padding="same", dilation=(2, 3), groups=4), False, 1))  # depthwise
@example(case=((2, 6, 8, 7), (6, 2, 2, 3), dict(stride=(2, 1), padding=(1, 2), dilation=2, groups=3), True, 2))
@example(case=((1, 2, 5, 5), (2, 2, 3, 3), dict(padding="valid", stride=(1, 2)), True, 3))
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's note on its copy
def test_conv2d_with_dilation_groups_and_same_padding_matches_torch(case):
    x_shape, w_shape, options, with_bias, seed = case
    arrays = [random_array(seed, x_shape), random_array(seed + 1, w_shape)]
    if with_bias:
        arrays.append(random_array(seed + 2, w_shape[:1]))
    assert_matches_torch(lambda *a: F.conv2d(*a, **options), lambda *a: TF.conv2d(*a, **options), *arrays)


@SETTINGS
@given(kernel=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 3)),
       height=st.integers(3, 8), width=st.integers(3, 8), seed=seeds)
def test_max_pool2d_matches_torch(kernel, stride, height, width, seed):
    x = random_array(seed, (2, 2, height, width))  # continuous values: no two tie
    assert_matches_torch(lambda t: F.max_pool2d(t, kernel, stride), lambda t: TF.max_pool2d(t, kernel, stride), x)


@SETTINGS
@given(kernel=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 1), dilation=st.integers(1, 2),
       height=st.integers(5, 8), width=st.integers(5, 8), seed=seeds)  # the widest reach, 5, fits
@example(kernel=2, stride=2, padding=0, dilation=1, height=5, width=7, seed=0)  # one partial window per side
@example(kernel=3, stride=2, padding=1, dilation=1, height=6, width=6, seed=1)  # it would start in the right pad
def test_pooling_with_ceil_mode_and_dilation_matches_torch(kernel, stride, padding, dilation, height, width, seed):
    x = random_array(seed, (2, 2, height, width))
    padding = min(padding, (dilation * (kernel - 1) + 1) // 2)
    options = dict(padding=padding, dilation=dilation, ceil_mode=True)
    assert_matches_torch(lambda t: F.max_pool2d(t, kernel, stride, **options),
                         lambda t: TF.max_pool2d(t, kernel, stride, **options), x)
    for include in (True, False):
        options = dict(padding=min(padding, kernel // 2), ceil_mode=True, count_include_pad=include)
        assert_matches_torch(lambda t: F.avg_pool2d(t, kernel, stride, **options),
                             lambda t: TF.avg_pool2d(t, kernel, stride, **options), x)


@SETTINGS
@given(lead=st.lists(st.integers(1, 4), max_size=2).map(tuple), fan_in=st.integers(1, 5),
       fan_out=st.integers(1, 5), with_bias=st.booleans(), seed=seeds)
@example(lead=(2, 3), fan_in=4, fan_out=5, with_bias=True, seed=0)  # batched 3-D input
def test_linear_matches_torch(lead, fan_in, fan_out, with_bias, seed):
    arrays = [random_array(seed, lead + (fan_in,)), random_array(seed + 1, (fan_out, fan_in))]
    if with_bias:
        arrays.append(random_array(seed + 2, (fan_out,)))
    assert_matches_torch(F.linear, TF.linear, *arrays)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple), data=st.data())
def test_log_softmax_matches_torch(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = random_array(data.draw(seeds), shape, -10.0, 10.0)
    assert_matches_torch(lambda t: F.log_softmax(t, axis=axis), lambda t: TF.log_softmax(t, dim=axis), x)


@SETTINGS
@given(n=st.integers(1, 6), k=st.integers(2, 6), smoothing=st.sampled_from([0.0, 0.1]), data=st.data())
def test_cross_entropy_matches_torch(n, k, smoothing, data):
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    logits = random_array(data.draw(seeds), (n, k), -10.0, 10.0)
    assert_matches_torch(lambda t: F.cross_entropy(t, labels, label_smoothing=smoothing),
                         lambda t: TF.cross_entropy(t, torch.tensor(labels), label_smoothing=smoothing), logits)


BN_SHAPES = {"2d": (6, 3), "3d": (4, 3, 5), "4d": (3, 2, 4, 3)}


def batch_norm_pair(shape, training, affine):
    """Our batch_norm and torch's, each holding its own copy of the same running statistics."""
    channels = shape[1]
    mean, var = random_array(10, (channels,)), random_array(11, (channels,), 0.5, 2.0)
    ours_stats = Tensor(mean.copy()), Tensor(var.copy())
    theirs_stats = torch.tensor(mean), torch.tensor(var)

    def ours(x, *affine_params):
        return F.batch_norm(x, *ours_stats, *affine_params, training=training, momentum=0.2, eps=1e-4)

    def theirs(x, *affine_params):
        return TF.batch_norm(x, *theirs_stats, *affine_params, training=training, momentum=0.2, eps=1e-4)

    arrays = [random_array(0, shape, -3.0, 5.0)]
    if affine:
        arrays += [random_array(1, (channels,)), random_array(2, (channels,))]
    return ours, theirs, arrays, ours_stats, theirs_stats


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("dims", sorted(BN_SHAPES))
def test_batch_norm_matches_torch(dims, training, affine):
    ours, theirs, arrays, _, _ = batch_norm_pair(BN_SHAPES[dims], training, affine)
    assert_matches_torch(ours, theirs, *arrays)


def laid_out(a, layout):
    """The (N, C, H, W) array `a`, same values, in another memory layout."""
    if layout == "conv":  # (C, H, W, N) in memory, as a convolution leaves its output
        return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    if layout == "channels-last":
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "strided":  # every other column of a wider array: no permutation of its shape is dense
        wide = np.zeros(a.shape[:3] + (2 * a.shape[3],))
        wide[..., ::2] = a
        return wide[..., ::2]
    return a


@pytest.mark.parametrize("grad_layout", ["nchw", "conv"])
@pytest.mark.parametrize("layout", ["conv", "channels-last", "strided"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_batch_norm_on_any_memory_layout_matches_torch(training, layout, grad_layout):
    # batch_norm works on each channel's numbers where they lie; the values must not depend on where that is.
    ours_fn, theirs_fn, (x, weight, bias), ours_stats, theirs_stats = batch_norm_pair((4, 3, 5, 2), training, True)
    ours = [Tensor(laid_out(x, layout), requires_grad=True), Tensor(weight, requires_grad=True),
            Tensor(bias, requires_grad=True)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    out, expected = ours_fn(*ours), theirs_fn(*theirs)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL)
    cotangent = random_array(3, x.shape)
    out.backward(laid_out(cotangent, grad_layout))
    expected.backward(torch.tensor(cotangent))
    for name, a, b in zip(("x", "weight", "bias"), ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)
    for our, their in zip(ours_stats, theirs_stats):
        np.testing.assert_allclose(our.numpy(), their.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("only", ["weight", "bias"], ids=["weight-only", "bias-only"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_batch_norm_with_only_one_affine_parameter_matches_torch(training, only):
    # PyTorch takes weight and bias independently: a bias alone shifts, a weight alone scales.
    ours, theirs, (x, weight, bias), _, _ = batch_norm_pair(BN_SHAPES["4d"], training, affine=True)
    if only == "weight":
        assert_matches_torch(lambda x, w: ours(x, w, None), lambda x, w: theirs(x, w, None), x, weight)
    else:
        assert_matches_torch(lambda x, b: ours(x, None, b), lambda x, b: theirs(x, None, b), x, bias)


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("dims", sorted(BN_SHAPES))
def test_batch_norm_running_stats_after_a_step_match_torch(dims, training):
    ours, theirs, arrays, ours_stats, theirs_stats = batch_norm_pair(BN_SHAPES[dims], training, affine=True)
    assert_matches_torch(ours, theirs, *arrays)
    for name, our, their in zip(("running_mean", "running_var"), ours_stats, theirs_stats):
        np.testing.assert_allclose(our.numpy(), their.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_scales_survivors_by_one_over_one_minus_p_like_torch(p):
    # The masks differ (different generators); what must agree is the set of factors an element
    # is multiplied by, forwards and backwards: 0 or 1/(1-p).
    x = random_array(0, (4000,), 0.5, 2.0)
    manual_seed(0)
    t = Tensor(x.copy(), requires_grad=True)
    out = F.dropout(t, p, training=True)
    out.sum().backward()
    ours_factors = np.unique(np.round(out.numpy() / x, 12))
    torch.manual_seed(0)
    theirs_factors = np.unique(np.round(TF.dropout(torch.tensor(x), p, training=True).numpy() / x, 12))
    np.testing.assert_allclose(ours_factors, theirs_factors, rtol=1e-12)
    np.testing.assert_allclose(ours_factors, [0.0, 1 / (1 - p)], rtol=1e-12)
    np.testing.assert_allclose(t.grad, out.numpy() / x, rtol=1e-12)


def test_dropout_in_eval_mode_is_the_identity_like_torch():
    x = random_array(0, (50,))
    np.testing.assert_array_equal(F.dropout(Tensor(x), 0.5, training=False).numpy(), x)
    np.testing.assert_array_equal(TF.dropout(torch.tensor(x), 0.5, training=False).numpy(), x)


ACTIVATIONS = {"tanh": (F.tanh, torch.tanh), "sigmoid": (F.sigmoid, torch.sigmoid), "relu": (F.relu, TF.relu)}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch_including_zero_and_saturated_inputs(name):
    x = np.concatenate([random_array(0, (20,), -4.0, 4.0), [0.0, -0.0, 30.0, -30.0, 1e3, -1e3]])
    assert_matches_torch(*ACTIVATIONS[name], x)


MATMUL_SHAPES = [((3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
                 ((4,), (4,)), ((1, 3, 4), (2, 4, 5))]


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_with_broadcasting_matches_torch(a_shape, b_shape):
    assert_matches_torch(lambda a, b: a @ b, lambda a, b: a @ b, random_array(0, a_shape), random_array(1, b_shape))


def _tensor_ops():
    """(name, ours, theirs, input arrays): the same expression in both frameworks, written each way."""
    import tinygrad_mnist as tg
    a, b, c = random_array(0, (3, 4)), random_array(1, (3, 4)), random_array(2, (4,))
    positive = random_array(3, (3, 4), 0.5, 2.0)
    rows, labels = np.array([0, 2, 2, 1]), np.array([3, 0, 0, 1])
    mask = random_array(4, (3, 4)) > 0
    return [
        ("getitem-basic", lambda x: x[1:, ::-2][:, None], lambda x: x[1:].flip(1)[:, ::2][:, None], [a]),
        ("getitem-int-and-ellipsis", lambda x: x[-1, ...], lambda x: x[-1, ...], [a]),
        ("getitem-repeated-rows", lambda x: x[[0, 0, 2]], lambda x: x[[0, 0, 2]], [a]),
        ("getitem-rows-labels", lambda x: x[rows, labels], lambda x: x[torch.tensor(rows), torch.tensor(labels)], [a]),
        ("getitem-mask", lambda x: x[mask], lambda x: x[torch.tensor(mask)], [a]),
        ("expand", lambda x: x.reshape(1, 3, 1, 4).expand(2, -1, 5, -1),
         lambda x: x.reshape(1, 3, 1, 4).expand(2, -1, 5, -1), [a]),
        ("cat", lambda x, y: tg.cat([x, y, x], dim=1), lambda x, y: torch.cat([x, y, x], dim=1), [a, b]),
        ("stack", lambda x, y: tg.stack([x, y], dim=-1), lambda x, y: torch.stack([x, y], dim=-1), [a, b]),
        ("split", lambda x: x.split([1, 3], dim=1)[1] * x.chunk(2, dim=1)[0].sum(),
         lambda x: x.split([1, 3], dim=1)[1] * x.chunk(2, dim=1)[0].sum(), [a]),
        ("where", lambda x, y: tg.where(x > y, x, y * 2), lambda x, y: torch.where(x > y, x, y * 2), [a, b]),
        ("maximum", lambda x, y: tg.maximum(x, y), lambda x, y: torch.maximum(x, y), [a, c]),
        ("minimum", lambda x, y: tg.minimum(x, y), lambda x, y: torch.minimum(x, y), [a, c]),
        ("pow-tensor", lambda x, y: x ** y, lambda x, y: x ** y, [positive, b]),
        ("rpow", lambda x: 2 ** x, lambda x: 2 ** x, [a]),
        ("clone-double", lambda x: x.clone().double() * x, lambda x: x.clone().double() * x, [a]),
        ("max-dim", lambda x: x.max(dim=1).values * x.max(1, keepdim=True)[0],
         lambda x: x.max(dim=1).values * x.max(1, keepdim=True)[0], [a]),
        ("min-dim", lambda x: x.min(0)[0], lambda x: x.min(0)[0], [a]),
        ("permute-view-unsqueeze", lambda x: x.view(3, 2, 2).permute(2, 0, 1).unsqueeze(1).squeeze(),
         lambda x: x.view(3, 2, 2).permute(2, 0, 1).unsqueeze(1).squeeze(), [a]),
        ("sum-mean-dim", lambda x: x.sum(dim=0, keepdim=True) + x.mean(dim=1, keepdim=True),
         lambda x: x.sum(dim=0, keepdim=True) + x.mean(dim=1, keepdim=True), [a]),
    ]


TENSOR_OPS = _tensor_ops()


@pytest.mark.parametrize("name, ours, theirs, arrays", TENSOR_OPS, ids=[case[0] for case in TENSOR_OPS])
def test_tensor_op_matches_torch(name, ours, theirs, arrays):
    assert_matches_torch(ours, theirs, *arrays)


def _top_level_functions():
    """(name, call): torch.<name>(...) as client code writes it, with PyTorch's argument names."""
    return [
        ("abs-sqrt-rsqrt-square", lambda lib, x: lib.abs(x) + lib.sqrt(input=lib.abs(x) + 1) + lib.rsqrt(x * x + 1)
         + lib.square(x)),
        ("exp-log-neg", lambda lib, x: lib.exp(x) + lib.log(input=lib.exp(x) + 1) + lib.neg(x)),
        ("sin-cos-tanh-sigmoid-relu", lambda lib, x: lib.sin(x) * lib.cos(x) + lib.tanh(x) + lib.sigmoid(x)
         + lib.relu(x)),
        ("clamp-clip", lambda lib, x: lib.clamp(x, min=-1, max=0.5) + lib.clip(input=x, max=0)),
        ("var-std", lambda lib, x: lib.var(x, dim=1, keepdim=True) + lib.std(x, 0, unbiased=False)),
        ("prod-norm", lambda lib, x: lib.prod(input=x, dim=1) + lib.norm(x, p=2, dim=1) + lib.norm(x, 1, 1)),
        ("logsumexp-softmax", lambda lib, x: lib.logsumexp(x, dim=1)[:, None] + lib.softmax(x, dim=0)
         + lib.log_softmax(input=x, dim=1)),
        ("mean-sum-amax-amin", lambda lib, x: lib.mean(x, dim=1, keepdim=True) + lib.sum(input=x, dim=0)
         + lib.amax(x, dim=1, keepdim=True) + lib.amin(x, 0)),
        ("pow-matmul", lambda lib, x: lib.pow(x, 2) + lib.pow(2, x) + lib.matmul(x, lib.transpose(x, 0, 1))[:, :1]),
        ("swapaxes-split", lambda lib, x: lib.swapaxes(x, 0, 1)[0] + lib.split(x, 2, dim=1)[1][0, 0]),
    ]


TOP_LEVEL = _top_level_functions()


@pytest.mark.parametrize("name, call", TOP_LEVEL, ids=[case[0] for case in TOP_LEVEL])
def test_top_level_function_matches_torch(name, call):
    import tinygrad_mnist as tg
    assert_matches_torch(lambda x: call(tg, x), lambda x: call(torch, x), random_array(11, (3, 4)))


def test_every_top_level_function_of_the_engine_is_a_pytorch_function():
    import tinygrad_mnist as tg
    assert [name for name in tg.TENSOR_FUNCTIONS + ("pow", "split") if not callable(getattr(torch, name, None))] == []


def _edge_cases():
    """(name, ours, theirs, input arrays) where a naive VJP divides by zero: norms of zero rows and of rows
    with zeros, std of a constant row, logsumexp of rows of -inf and +inf, sqrt at 0."""
    import tinygrad_mnist as tg
    zeros = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, -1.0], [1.0, -3.0, 0.5]])
    constant = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.5]])
    infinite = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0], [-np.inf, 0.5, 1.0]])
    cases = [(f"norm-p{p}-with-zeros", (lambda p: lambda a: a.norm(p=p, dim=1) + a[0].norm(p=p))(p),
              (lambda p: lambda a: a.norm(p=p, dim=1) + a[0].norm(p=p))(p), [zeros])
             for p in (2, "fro", 1, 3, 0.5, float("inf"))]
    return cases + [
        ("norm-of-all-zeros", lambda a: tg.norm(a * 0), lambda a: torch.norm(a * 0), [zeros]),
        ("std-of-a-constant-row", lambda a: a.std(1) + a.std(1, unbiased=False), lambda a: a.std(1) +
         a.std(1, unbiased=False), [constant]),
        ("logsumexp-of-infinite-rows", lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), [infinite]),
        ("sqrt-at-zero", lambda a: a.sqrt(), lambda a: a.sqrt(), [np.array([0.0, 4.0])]),
        ("rsqrt-at-zero", lambda a: a.rsqrt(), lambda a: a.rsqrt(), [np.array([0.0, 4.0])]),
    ]


EDGES = _edge_cases()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, where an inf or a NaN appears
@pytest.mark.parametrize("name, ours, theirs, arrays", EDGES, ids=[case[0] for case in EDGES])
def test_gradient_at_a_zero_or_infinite_edge_matches_torch(name, ours, theirs, arrays):
    assert_matches_torch(ours, theirs, *arrays)


def test_argmax_and_indices_with_keepdim_match_torch():
    x = random_array(0, (4, 5))
    ours, theirs = Tensor(x), torch.tensor(x)
    np.testing.assert_array_equal(ours.argmax(dim=1, keepdim=True).numpy(), theirs.argmax(dim=1, keepdim=True))
    np.testing.assert_array_equal(ours.min(dim=0).indices.numpy(), theirs.min(dim=0).indices)
    assert ours.argmax(dim=1, keepdim=True).dtype == np.int64


def _functional_cases():
    """(name, ours, theirs, input arrays) for the functional API beyond the ops above."""
    x, img = random_array(5, (3, 5), -3.0, 3.0), random_array(6, (2, 3, 7, 6))
    labels, ignored = np.array([4, 0, 2]), np.array([4, -1, 2])
    weight = random_array(7, (5,), 0.5, 2.0)
    w_t = torch.tensor(weight)
    return [
        ("sin-cos", lambda a: a.sin() * a.cos(), lambda a: a.sin() * a.cos(), [x]),
        ("prod", lambda a: a.prod(1) + a.prod(), lambda a: a.prod(1) + a.prod(), [x]),
        ("abs-clamp", lambda a: a.abs() + a.clamp(-1, 0.5) + a.clip(min=0), lambda a: a.abs() + a.clamp(-1, 0.5) +
         a.clip(min=0), [x]),
        ("var-std-norm", lambda a: a.var(1) + a.std(0).sum() + a.norm() + a.var(1, unbiased=False),
         lambda a: a.var(1) + a.std(0).sum() + a.norm() + a.var(1, unbiased=False), [x]),
        ("logsumexp", lambda a: a.logsumexp(1), lambda a: a.logsumexp(1), [x]),
        ("gelu", F.gelu, TF.gelu, [x]),
        ("gelu-tanh", lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh"), [x]),
        ("leaky-elu-silu-softplus", lambda a: F.leaky_relu(a, 0.2) + F.elu(a) + F.silu(a) + F.softplus(a),
         lambda a: TF.leaky_relu(a, 0.2) + TF.elu(a) + TF.silu(a) + TF.softplus(a), [x]),
        ("softmax-dim", lambda a: F.softmax(a, dim=0), lambda a: TF.softmax(a, dim=0), [x]),
        ("pad", lambda a: F.pad(a, (1, 2, 0, 1), value=0.5), lambda a: TF.pad(a, (1, 2, 0, 1), value=0.5), [img]),
        ("avg-pool2d", lambda a: F.avg_pool2d(a, 3, 2, padding=1), lambda a: TF.avg_pool2d(a, 3, 2, padding=1), [img]),
        ("avg-pool2d-exclude-pad", lambda a: F.avg_pool2d(a, 3, 1, padding=1, count_include_pad=False),
         lambda a: TF.avg_pool2d(a, 3, 1, padding=1, count_include_pad=False), [img]),
        ("adaptive-avg-pool2d", lambda a: F.adaptive_avg_pool2d(a, (3, 2)), lambda a: TF.adaptive_avg_pool2d(a, (3, 2)),
         [img]),
        ("adaptive-avg-pool2d-1", lambda a: F.adaptive_avg_pool2d(a, 1), lambda a: TF.adaptive_avg_pool2d(a, 1), [img]),
        ("max-pool2d-padding", lambda a: F.max_pool2d(a, 3, 2, padding=1), lambda a: TF.max_pool2d(a, 3, 2, padding=1),
         [img]),
        ("layer-norm", lambda a, w, b: F.layer_norm(a, (5,), w, b), lambda a, w, b: TF.layer_norm(a, (5,), w, b),
         [x, weight, random_array(8, (5,))]),
        ("mse-l1", lambda a, b: F.mse_loss(a, b) + F.l1_loss(a, b, reduction="sum"),
         lambda a, b: TF.mse_loss(a, b) + TF.l1_loss(a, b, reduction="sum"), [x, random_array(9, (3, 5))]),
        ("nll-loss", lambda a: F.nll_loss(F.log_softmax(a, dim=1), labels),
         lambda a: TF.nll_loss(TF.log_softmax(a, dim=1), torch.tensor(labels)), [x]),
        ("nll-loss-sum", lambda a: F.nll_loss(a, labels, reduction="sum"),
         lambda a: TF.nll_loss(a, torch.tensor(labels), reduction="sum"), [x]),
        ("nll-loss-weight-ignore", lambda a: F.nll_loss(a, ignored, weight=Tensor(weight), ignore_index=-1),
         lambda a: TF.nll_loss(a, torch.tensor(ignored), weight=w_t, ignore_index=-1), [x]),
        ("nll-loss-none-4d", lambda a: F.nll_loss(a, np.array([[[0, 2]], [[1, 1]]]), reduction="none"),
         lambda a: TF.nll_loss(a, torch.tensor([[[0, 2]], [[1, 1]]]), reduction="none"), [random_array(10, (2, 3, 1, 2))]),
        ("cross-entropy-weight-smoothing", lambda a: F.cross_entropy(a, labels, weight=Tensor(weight),
                                                                     label_smoothing=0.2),
         lambda a: TF.cross_entropy(a, torch.tensor(labels), weight=w_t, label_smoothing=0.2), [x]),
        ("cross-entropy-ignore-smoothing", lambda a: F.cross_entropy(a, ignored, ignore_index=-1, label_smoothing=0.1),
         lambda a: TF.cross_entropy(a, torch.tensor(ignored), ignore_index=-1, label_smoothing=0.1), [x]),
        ("cross-entropy-none", lambda a: F.cross_entropy(a, labels, reduction="none", label_smoothing=0.3),
         lambda a: TF.cross_entropy(a, torch.tensor(labels), reduction="none", label_smoothing=0.3), [x]),
        ("cross-entropy-sum-weight", lambda a: F.cross_entropy(a, ignored, Tensor(weight), -1, "sum", 0.1),
         lambda a: TF.cross_entropy(a, torch.tensor(ignored), w_t, ignore_index=-1, reduction="sum",
                                    label_smoothing=0.1), [x]),
    ]


FUNCTIONAL = _functional_cases()


@pytest.mark.parametrize("name, ours, theirs, arrays", FUNCTIONAL, ids=[case[0] for case in FUNCTIONAL])
def test_functional_matches_torch(name, ours, theirs, arrays):
    assert_matches_torch(ours, theirs, *arrays)


def test_autograd_grad_and_retain_grad_match_torch():
    from tinygrad_mnist import autograd
    arrays = random_array(0, (3, 4)), random_array(1, (4, 2)), random_array(2, (3, 2))
    results = []
    for grad, make in ((autograd.grad, lambda a: Tensor(a.copy(), requires_grad=True)),
                       (torch.autograd.grad, lambda a: torch.tensor(a, requires_grad=True))):
        x, w, v = (make(a) for a in arrays)
        h = (x @ w).tanh()
        h.retain_grad()
        loss = (h * h * v).sum() + h.sum()
        by_grad = grad([loss, h], [x, h, w], grad_outputs=[None, v * 2], retain_graph=True)
        assert x.grad is None and w.grad is None
        loss.backward()
        results.append([np.asarray(g.detach().numpy()) for g in (*by_grad, x.grad, w.grad, h.grad, v.grad)])
    for k, (ours, theirs) in enumerate(zip(*results)):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=f"gradient {k}")


def _composed_ops():
    """(name, ours, theirs, input arrays) for the tensor functions composed of ops (products, rounding, flip,
    triangles, masked_fill, gather, sort, topk), the same expression in both frameworks."""
    import tinygrad_mnist as tg
    a, b = random_array(20, (3, 4), -3.0, 3.0), random_array(21, (4, 5))
    batch, other = random_array(22, (2, 3, 4)), random_array(23, (2, 4, 2))
    u, v = random_array(24, (4,)), random_array(25, (3,))
    mask = random_array(26, (3, 4)) > 0
    index = np.array([[0, 3, 3], [1, 1, 0], [2, 0, 3]])
    return [
        ("mm-bmm-mv", lambda x, y, p, q, w: tg.mm(x, y).sum() + tg.bmm(p, q).sum() + tg.mv(x, w),
         lambda x, y, p, q, w: torch.mm(x, y).sum() + torch.bmm(p, q).sum() + torch.mv(x, w), [a, b, batch, other, u]),
        ("dot-outer", lambda x, y: tg.dot(x, x) * tg.outer(x, y), lambda x, y: torch.dot(x, x) * torch.outer(x, y),
         [u, v]),
        ("rounding", lambda x: x.floor() * x + x.ceil() + x.round() * 2 + x.trunc() * x + x.sign() * x
         + tg.round(x, decimals=1) + x.square(),
         lambda x: x.floor() * x + x.ceil() + x.round() * 2 + x.trunc() * x + x.sign() * x
         + torch.round(x, decimals=1) + x.square(), [a]),
        ("flip-tril-triu", lambda x: x.flip(0) * x.flip(0, 1) + tg.tril(x, 1) + x.triu(-1) * 3,
         lambda x: x.flip(0) * x.flip(0, 1) + torch.tril(x, 1) + x.triu(-1) * 3, [a]),
        ("masked-fill", lambda x, s: x.masked_fill(Tensor(mask), s) * x + tg.masked_fill(x, Tensor(~mask), -1.5),
         lambda x, s: x.masked_fill(torch.tensor(mask), s) * x + torch.masked_fill(x, torch.tensor(~mask), -1.5),
         [a, np.array(0.7)]),
        ("gather", lambda x: x.gather(1, Tensor(index)) * tg.gather(x, 0, Tensor(index % 3)).sum(),
         lambda x: x.gather(1, torch.tensor(index)) * torch.gather(x, 0, torch.tensor(index % 3)).sum(), [a]),
        ("sort", lambda x: x.sort(1, descending=True).values * tg.sort(x, 0)[0],
         lambda x: x.sort(1, descending=True).values * torch.sort(x, 0)[0], [a]),
        ("topk", lambda x: x.topk(2, 1).values.sum() * tg.topk(x, 2, 0, largest=False)[0],
         lambda x: x.topk(2, 1).values.sum() * torch.topk(x, 2, 0, largest=False)[0], [a]),
    ]


COMPOSED = _composed_ops()


@pytest.mark.parametrize("name, ours, theirs, arrays", COMPOSED, ids=[case[0] for case in COMPOSED])
def test_composed_tensor_function_matches_torch(name, ours, theirs, arrays):
    assert_matches_torch(ours, theirs, *arrays)


def _same(ours, theirs):
    """Our tensor equals PyTorch's: the same shape, dtype name and values (NaN where NaN)."""
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_and_topk_indices_match_torch_with_ties_and_nan(descending):
    import tinygrad_mnist as tg
    x = np.array([[3.0, 1.0, 3.0, np.nan, 1.0, 2.0], [0.0, -0.5, 0.0, 7.0, 0.0, -0.5]])
    ours, theirs = Tensor(x), torch.tensor(x)
    for dim in (1, 0):
        got, expected = ours.sort(dim, descending), theirs.sort(dim=dim, descending=descending, stable=True)
        _same(got.values, expected.values)
        _same(got.indices, expected.indices)
        _same(tg.argsort(ours, dim, descending), torch.argsort(theirs, dim=dim, descending=descending, stable=True))
    distinct = random_array(30, (4, 7))
    for largest in (True, False):
        got, expected = Tensor(distinct).topk(3, 1, largest), torch.tensor(distinct).topk(3, 1, largest)
        _same(got.values, expected.values)
        _same(got.indices, expected.indices)


def test_value_tests_reductions_and_one_hot_match_torch():
    import tinygrad_mnist as tg
    x = np.array([[1.5, -np.inf, np.nan, 0.0], [-2.5, 0.5, np.inf, -0.0]])
    ours, theirs = Tensor(x), torch.tensor(x)
    for name in ("isnan", "isinf", "isfinite", "sign", "floor", "ceil", "round", "trunc"):
        _same(getattr(tg, name)(ours), getattr(torch, name)(theirs))
    flags = random_array(31, (2, 3, 4)) > 0.5
    for fn in ("any", "all"):
        _same(getattr(tg, fn)(Tensor(flags)), getattr(torch, fn)(torch.tensor(flags)))
        for dim in (0, -1, (0, 2)):
            _same(getattr(Tensor(flags), fn)(dim, True), getattr(torch.tensor(flags), fn)(dim, True))
    labels = np.array([[2, 0], [4, 4]])
    _same(F.one_hot(Tensor(labels)), TF.one_hot(torch.tensor(labels)))
    _same(F.one_hot(Tensor(labels), num_classes=7), TF.one_hot(torch.tensor(labels), num_classes=7))
    ints = np.array([[3, -1], [0, 2]])
    for name in ("floor", "round", "sign", "square", "isnan", "flip"):
        args = ((0,),) if name == "flip" else ()
        _same(getattr(Tensor(ints), name)(*args), getattr(torch.tensor(ints), name)(*args))
    _same(Tensor(ints).tril(), torch.tensor(ints).tril())
    _same(Tensor(ints).masked_fill(Tensor(ints > 0), 2.7), torch.tensor(ints).masked_fill(torch.tensor(ints > 0), 2.7))
    _same(tg.outer(Tensor(ints[0]), Tensor(np.array([0.5, 2.0], np.float32))),
          torch.outer(torch.tensor(ints[0]), torch.tensor([0.5, 2.0])))


def accuracy(lib, output, target, topk=(1,)):
    """The ImageNet example's (pytorch/examples, imagenet/main.py) top-k accuracy, written against `lib`."""
    with lib.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
            res.append(correct_k.mul_(100.0 / batch_size))
        return res


def test_the_imagenet_examples_top_k_accuracy_matches_torch():
    import tinygrad_mnist as tg
    output, target = random_array(40, (64, 10)), np.random.default_rng(41).integers(0, 10, 64)
    ours = accuracy(tg, Tensor(output), Tensor(target), topk=(1, 3, 5))
    theirs = accuracy(torch, torch.tensor(output), torch.tensor(target), topk=(1, 3, 5))
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == (1,) and a.dtype == np.float32
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, err_msg=f"top-{(1, 3, 5)[k]}")
    assert 0 < float(ours[0]) < float(ours[1]) < float(ours[2]) < 100


def vae_loss(lib, functional, x, w_enc, w_mu, w_logvar, w_dec, noise):
    """A VAE's step (pytorch/examples, vae/main.py): encode, reparameterise with noise(std) (randn_like), decode,
    and its loss, reconstruction plus KL divergence, written against `lib`."""
    h = functional.relu(functional.linear(x, w_enc))
    mu, logvar = functional.linear(h, w_mu), functional.linear(h, w_logvar)
    std = lib.exp(0.5 * logvar)
    z = mu + noise(std) * std
    recon = lib.sigmoid(functional.linear(z, w_dec))
    kld = -0.5 * lib.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return functional.mse_loss(recon, x, reduction="sum") + kld


def test_a_vae_reparameterised_with_randn_like_under_manual_seed_matches_torch():
    import tinygrad_mnist as tg
    arrays = [random_array(50, (5, 6), 0.0, 1.0), random_array(51, (4, 6)), random_array(52, (2, 4)),
              random_array(53, (2, 4)), random_array(54, (6, 2))]
    tg.manual_seed(7)
    eps = tg.randn_like(Tensor(np.zeros((5, 2)))).numpy()  # the draw the engine's run repeats under the seed

    def ours_noise(std):
        return tg.randn_like(std)

    def ours(*tensors):
        tg.manual_seed(7)
        return vae_loss(tg, F, *tensors, ours_noise)
    assert_matches_torch(ours, lambda *tensors: vae_loss(torch, TF, *tensors, lambda std: torch.tensor(eps)),
                         *arrays)


def test_losses_written_with_gather_and_one_hot_match_torch():
    logits, target = random_array(60, (6, 4)), np.array([3, 0, 1, 1, 2, 0])

    def written(functional, x, y):
        logp = functional.log_softmax(x, dim=1)
        picked = -logp.gather(1, y.unsqueeze(1)).squeeze(1).mean()
        focal = -((1 - logp.exp()) ** 2 * logp * functional.one_hot(y, 4)).sum(1).mean()
        return picked + focal + functional.cross_entropy(x, y)
    assert_matches_torch(lambda x: written(F, x, Tensor(target)), lambda x: written(TF, x, torch.tensor(target)),
                         logits)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), max_size=3).map(tuple), data=st.data())
def test_cumsum_matches_torch(shape, data):
    ndim = max(len(shape), 1)
    dim = data.draw(st.integers(-ndim, ndim - 1))
    x = random_array(data.draw(seeds), shape)
    assert_matches_torch(lambda t: t.cumsum(dim) * t, lambda t: t.cumsum(dim) * t, x)


def test_cumsum_of_integers_and_booleans_sums_in_int64_like_torch():
    import tinygrad_mnist as tg
    for x in (np.array([[1, 2], [3, 4]], np.int32), np.array([True, False, True]), np.array([200, 100], np.uint8)):
        _same(tg.cumsum(Tensor(x), 0), torch.cumsum(torch.tensor(x), 0))
    _same(Tensor(np.arange(4)).cumsum(0, dtype=tg.float32), torch.arange(4).cumsum(0, dtype=torch.float32))


def test_log1p_expm1_log2_log10_and_erf_match_torch_near_zero_too():
    # Near 0, log(1 + x) and exp(x) - 1 lose every digit that log1p and expm1 keep.
    x = np.concatenate([random_array(70, (20,), 0.01, 3.0), [1e-12, 3e-9, 8.0, 100.0]])
    assert_matches_torch(lambda t: t.log1p() * t.expm1() + t.log2() + t.log10() + t.erf(),
                         lambda t: t.log1p() * t.expm1() + t.log2() + t.log10() + t.erf(), x)
    tiny = np.array([1e-12, -1e-9, 1e-15])
    assert_matches_torch(lambda t: (t.log1p() + t.expm1()) * Tensor(1 / tiny),  # ≈ 2 when no digit is lost
                         lambda t: (t.log1p() + t.expm1()) * torch.tensor(1 / tiny), tiny)


def test_log2_of_powers_of_two_is_whole_and_integer_inputs_give_float32_like_torch():
    import tinygrad_mnist as tg
    powers = np.array([1, 2, 8, 1024, 2**40])
    _same(tg.log2(Tensor(powers)), torch.log2(torch.tensor(powers)))
    assert tg.log2(Tensor(powers)).tolist() == [0.0, 1.0, 3.0, 10.0, 40.0]
    _same(tg.log10(Tensor(np.array([1.0, 1000.0]))), torch.log10(torch.tensor([1.0, 1000.0], dtype=torch.float64)))
    for name in ("log1p", "expm1", "erf"):
        ours, theirs = getattr(tg, name)(Tensor(np.array([0, 1, 2]))), getattr(torch, name)(torch.tensor([0, 1, 2]))
        assert ours.dtype == np.float32 and theirs.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)  # float32: the last bit may differ


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
       reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans(), seed=seeds)
def test_binary_cross_entropy_matches_torch(shape, reduction, weighted, seed):
    x, y = random_array(seed, shape, 0.0, 1.0), random_array(seed + 1, shape, 0.0, 1.0)
    weight = random_array(seed + 2, shape[-1:], 0.5, 2.0) if weighted else None
    assert_matches_torch(lambda a, b: F.binary_cross_entropy(a, b, None if weight is None else Tensor(weight),
                                                             reduction),
                         lambda a, b: TF.binary_cross_entropy(a, b, None if weight is None else torch.tensor(weight),
                                                              reduction=reduction), x, y)


def test_binary_cross_entropy_clamps_its_logs_and_bounds_its_gradient_like_torch():
    # At probabilities 0 and 1 the logs are clamped at -100, and the input's gradient divides by
    # max(x (1-x), 1e-12): finite where the derivative of the clamped loss would overflow (x = 1e-40) or vanish.
    x = np.array([0.0, 1.0, 1e-40, 1e-13, 1 - 1e-13, 0.5, 1e-300])
    y = np.array([0.3, 0.3, 1.0, 1.0, 0.0, 0.2, 0.0])
    assert_matches_torch(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                         lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"), x, y)


@st.composite
def conv_transpose_cases(draw):
    """(x shape, weight shape, conv_transpose2d options, with bias, seed) over every setting PyTorch takes."""
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    w_shape, options = conv_transpose2d_settings(draw, *x_shape[1:], max_kernel=4, max_per_group=3)
    return x_shape, w_shape, options, draw(st.booleans()), draw(seeds)


@SETTINGS
@given(case=conv_transpose_cases())
@example(case=((2, 3, 7, 7), (3, 4, 4, 4), dict(stride=2, padding=1), True, 0))  # DCGAN's doubling
@example(case=((2, 4, 1, 1), (4, 5, 7, 7), dict(), False, 1))  # a code vector to a 7×7 map
@example(case=((1, 4, 5, 4), (4, 2, 3, 2), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2),
                                                groups=2), True, 2))
@example(case=((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=1, padding=2, output_padding=2, dilation=3), True, 3))
def test_conv_transpose2d_matches_torch(case):
    x_shape, w_shape, options, with_bias, seed = case
    arrays = [random_array(seed, x_shape), random_array(seed + 1, w_shape)]
    if with_bias:
        arrays.append(random_array(seed + 2, (w_shape[1] * options.get("groups", 1),)))
    assert_matches_torch(lambda *a: F.conv_transpose2d(*a, **options), lambda *a: TF.conv_transpose2d(*a, **options),
                         *arrays)
