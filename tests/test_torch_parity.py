"""PyTorch as the oracle: on the same float64 inputs, forward outputs and the gradients of every input agree.

Skipped where PyTorch is not installed (`pip install 'tinygrad_mnist[torch]'`).
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, manual_seed

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
@given(kernel=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 3)),
       height=st.integers(3, 8), width=st.integers(3, 8), seed=seeds)
def test_max_pool2d_matches_torch(kernel, stride, height, width, seed):
    x = random_array(seed, (2, 2, height, width))  # continuous values: no two tie
    assert_matches_torch(lambda t: F.max_pool2d(t, kernel, stride), lambda t: TF.max_pool2d(t, kernel, stride), x)


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


BN_SHAPES = {"2d": (6, 3), "4d": (3, 2, 4, 3)}


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
