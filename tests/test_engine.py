"""How the tape behaves: accumulation, reuse, no_grad, detach, freeing, depth, dtypes."""
import weakref

import numpy as np
import pytest

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, no_grad, is_grad_enabled


def test_gradients_accumulate_across_backward_calls_like_pytorch():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3 + 2, 3 + 4])


def test_a_node_used_twice_receives_the_sum_of_both_gradients():
    x = Tensor([3.0], requires_grad=True)
    y = x * 2
    (y * y + y).sum().backward()  # d/dx (4x² + 2x) = 8x + 2
    np.testing.assert_allclose(x.grad, [26.0])


def test_the_same_leaf_on_both_sides_of_an_op_gets_both_contributions():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x @ x).sum().backward()
    expected = np.ones((2, 2)) @ x.array.T + x.array.T @ np.ones((2, 2))
    np.testing.assert_allclose(x.grad, expected)


def test_leaf_gradients_do_not_alias_each_other():
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad += 10  # the optimizer updates grads in place; b must not see it
    np.testing.assert_allclose(b.grad, [1.0])


def test_no_grad_records_nothing():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        y = x * 2
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf


def test_no_grad_works_as_a_decorator():
    @no_grad()
    def double(t):
        return t * 2
    assert not double(Tensor([1.0], requires_grad=True)).requires_grad


def test_detach_cuts_the_tape_and_shares_data():
    x = Tensor([2.0], requires_grad=True)
    d = (x * x).detach()
    assert not d.requires_grad and d.is_leaf
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, [4.0])  # d is a constant here


def test_second_backward_through_a_freed_graph_raises_a_clear_error():
    x = Tensor([1.0], requires_grad=True)
    loss = (x.exp() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor([1.0], requires_grad=True)
    loss = (x.exp() * 2).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad, [4 * np.e])


def test_backward_frees_the_intermediate_tensors():
    x = Tensor(np.ones(1000), requires_grad=True)
    hidden = x.exp()
    loss = (hidden * hidden).sum()
    ref = weakref.ref(hidden)
    del hidden
    assert ref() is not None  # the graph holds it until backward
    loss.backward()
    assert ref() is None


def test_a_chain_of_100000_ops_backpropagates_without_recursion_errors():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="pass backward\\(gradient\\)"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0], dtype=np.float32))
    np.testing.assert_allclose(x.grad, [2.0, 20.0])


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_python_floats_become_float32_ints_int64_and_float64_is_kept_on_request():
    assert Tensor([1.0, 2]).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int64  # as torch.tensor: no silent float default for integers
    assert Tensor([True]).dtype == np.bool_
    assert Tensor(3.0).dtype == np.float32
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64
    assert Tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64


def test_scalars_do_not_promote_float32():
    x = Tensor([1.0, 2.0])
    for y in (x * 2.0, 2.0 * x, x + 1, 1 - x, x / 3.0, 3.0 / x, x ** 2):
        assert y.dtype == np.float32


def test_float32_inputs_give_float32_gradients_through_a_whole_network():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), requires_grad=True)
    gamma, beta = Tensor(np.ones(3, np.float32), requires_grad=True), Tensor(np.zeros(3, np.float32), requires_grad=True)
    fc = Tensor(rng.standard_normal((10, 12)).astype(np.float32), requires_grad=True)
    h = F.conv2d(x, w, padding=1)
    h = F.batch_norm(h, Tensor(np.zeros(3, np.float32)), Tensor(np.ones(3, np.float32)), gamma, beta, training=True)
    h = F.max_pool2d(F.max_pool2d(F.dropout(h.relu(), 0.2), 2), 2).flatten(1)
    loss = F.cross_entropy(F.linear(h.tanh().sigmoid(), fc), np.array([1, 2, 3, 4]), label_smoothing=0.1)
    assert loss.dtype == np.float32
    loss.backward()
    for t in (x, w, gamma, beta, fc):
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_comparisons_return_tensors_that_do_not_require_grad():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (x > 1.5, x < 2, x >= 2, x <= 2, x == 2, x != 2):
        assert not result.requires_grad and result.dtype == bool
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])


def test_numpy_arrays_on_the_left_of_an_operator_give_tensors():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.array([1, 2]), requires_grad=True)


def test_item_numpy_and_shape_accessors():
    x = Tensor([[1.0, 2.0, 3.0]])
    assert x.shape == (1, 3) and x.ndim == 2 and x.numel() == 3 and x.device == "cpu"
    assert Tensor([5.0]).item() == 5.0
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_transpose_swaps_two_axes_or_applies_a_permutation():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.transpose(0, 2).shape == (4, 3, 2)
    assert Tensor(np.zeros((2, 3))).transpose(0, 1).shape == (3, 2)
    assert x.transpose(1, 2, 0).shape == (3, 4, 2)
    assert x.transpose().shape == (4, 3, 2)
    assert x.flatten(1).shape == (2, 12) and x.flatten().shape == (24,)


def test_a_tensor_reached_along_paths_of_different_lengths_gets_every_contribution():
    a = Tensor(3.0, requires_grad=True)
    d = a * 2.0
    d = d + d * 2.0  # d = 3 · (2a): the first d feeds the add directly and through the mul
    d.backward()
    assert float(a.grad) == 6.0


def test_micrograd_sanity_expression_gives_its_known_value_and_gradient():
    x = Tensor(-4.0, requires_grad=True, dtype=np.float64)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert float(y.array) == -20.0 and float(x.grad) == 46.0  # micrograd's test, checked there against PyTorch


def test_gradcheck_perturbs_a_transposed_input_in_place():
    from tinygrad_mnist import gradcheck
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True, dtype=np.float64)
    xt = Tensor(x.array.T, requires_grad=True)  # a non-contiguous view
    assert not xt.array.flags.c_contiguous
    assert gradcheck(lambda t: (t * t).tanh(), xt)


def test_a_vjp_returning_the_wrong_number_of_gradients_raises_with_the_op_name():
    from tinygrad_mnist import Function

    class TwoForOne(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return g * 2, g

    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"TwoForOne.backward returned 2 gradients for its 1 inputs"):
        TwoForOne.apply(x).sum().backward()


@pytest.mark.parametrize("bad, message", [
    (lambda g: g.reshape(1, -1), r"gradient of input 0 has shape \(1, 3\), but the input has shape \(3,\)"),
    (lambda g: g.astype(np.float64), r"gradient of input 0 is float64, but the input is float32"),
])
def test_a_vjp_returning_a_gradient_of_the_wrong_shape_or_dtype_raises(bad, message):
    from tinygrad_mnist import Function

    class Broken(Function):
        def forward(self, a):
            return a + 1

        def backward(self, g):
            return (bad(g),)

    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Broken.backward: the " + message):
        Broken.apply(x).sum().backward()


def test_x_to_the_power_zero_has_gradient_zero_at_zero():
    x = Tensor([0.0, 2.0], requires_grad=True, dtype=np.float64)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b.T,
                                lambda a, b: F.linear(a, b)])
def test_mixed_float_dtypes_in_one_op_raise_a_clear_error(op):
    data = Tensor(np.ones((2, 3), np.float32))
    weight = Tensor(np.ones((2, 3), np.float64), requires_grad=True)
    with pytest.raises(TypeError, match=r"different floating-point dtypes \(float32 and float64\)"):
        op(data, weight)


def test_integer_tensors_take_the_float_dtype_of_the_other_input():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    counts = Tensor(np.array([1, 2, 3], np.int64))
    y = x * counts
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_max_and_max_pool_give_float32_gradients():
    x = Tensor(np.random.default_rng(0).random((2, 1, 4, 4), dtype=np.float32), requires_grad=True)
    (x.max(axis=1).sum() + F.max_pool2d(x, 2).sum()).backward()
    assert x.grad.dtype == np.float32


def test_unsmoothed_cross_entropy_in_float16_is_finite_on_a_large_batch():
    rng = np.random.default_rng(0)
    for n in (3000, 70000):
        logits = Tensor((rng.standard_normal((n, 10)) * 30).astype(np.float16), requires_grad=True)
        loss = F.cross_entropy(logits, rng.integers(0, 10, n))
        loss.backward()
        assert np.isfinite(float(loss.array)) and np.isfinite(logits.grad).all()
        assert logits.grad.dtype == np.float16


def test_public_toposort_puts_every_tensor_after_all_of_its_consumers():
    from tinygrad_mnist import toposort
    a = Tensor([1.0], requires_grad=True)
    b = a * 2
    c = b + b * 3  # b is used directly and through a longer path
    order = toposort(c)
    position = {id(t): i for i, t in enumerate(order)}
    assert order[0] is c and len(order) == len({id(t) for t in order})
    for t in order:
        for parent in (t.grad_fn.parents if t.grad_fn else ()):
            assert position[id(parent)] > position[id(t)]


def test_permute_puts_the_axes_in_the_order_given_as_in_pytorch():
    m = Tensor(np.arange(6.0).reshape(2, 3))
    assert m.permute(0, 1).shape == (2, 3) and m.permute((1, 0)).shape == (3, 2)
    np.testing.assert_array_equal(m.permute(0, 1).array, m.array)
    assert Tensor(np.zeros((2, 3, 4))).permute(2, 0, 1).shape == (4, 2, 3)
    with pytest.raises(ValueError, match="not a permutation of the 2 dimensions"):
        m.permute(0, 0)


def test_a_residual_block_keeps_no_activation_sized_array_beyond_the_tensors_it_made():
    """What a training graph holds: every array of an activation's size that an op saved for its VJP is a
    tensor of the graph (its input or output), not a copy made for that op alone. Batch norm keeps its
    input, not x̂; a padded 3×3 convolution too large to keep its columns keeps its unpadded input, not a
    padded copy. Either copy, per layer, would add one activation to the peak memory of a step."""
    from tinygrad_mnist.models.resnet import PreActBlock
    from tinygrad_mnist.tensor import toposort
    from tinygrad_mnist import nn, manual_seed

    manual_seed(0)
    stem, block = nn.Conv2d(1, 16, 3, padding=1), PreActBlock(16, 16)
    x = Tensor(np.random.default_rng(0).standard_normal((32, 1, 14, 14)).astype(np.float32))
    h = stem(x)  # in (C, H, W, N) memory order, as in training
    out = block(h).sum()
    graph = toposort(out)
    arrays = [t.array for t in graph]
    activation = h.array.size
    saved = [(type(t._ctx).__name__, a) for t in graph if t._ctx is not None
             for a in t._ctx.saved if a is not None and getattr(a, "size", 0) >= activation]
    assert {name for name, _ in saved} >= {"BatchNorm", "Conv2d", "ReLU"}
    for name, a in saved:
        assert any(np.shares_memory(a, b) for b in arrays), f"{name} saved a copy of shape {a.shape}"
    out.backward()  # and the gradients flow through what was kept
    assert all(p.grad is not None for p in block.parameters())
