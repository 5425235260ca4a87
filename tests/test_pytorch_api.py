"""A PyTorch user's everyday tensor habits work, or fail loudly: Python values, dtypes, factories, in-place
rules, `.grad` as a Tensor. (Gradients of the ops are in test_grad_ops.py, agreement with PyTorch in
test_torch_parity.py.)"""
import numpy as np
import pytest

import tinygrad_mnist as torch
from tinygrad_mnist import Tensor, nn, no_grad


def test_a_one_element_tensor_converts_to_python_values():
    loss = Tensor(0.25)
    assert float(loss) == 0.25 and int(Tensor(3)) == 3 and loss.item() == 0.25
    assert f"{loss:.3f}" == "0.250" and "{:.1f}".format(loss) == "0.2"
    assert Tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]


def test_a_comparison_works_in_an_if():
    loss = Tensor(0.5)
    assert (loss < 1.0) and not (loss > 1.0)
    if loss.lt(1.0):
        passed = True
    assert passed


def test_the_truth_value_of_a_tensor_of_several_elements_is_refused():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]) > 0)


def test_eq_sum_item_counts_correct_predictions_as_a_python_int():
    output = Tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    target = Tensor([1, 0, 0])
    pred = output.argmax(dim=1, keepdim=True)
    correct = pred.eq(target.view_as(pred)).sum().item()
    assert correct == 2 and isinstance(correct, int)


def test_dtype_methods_convert():
    x = Tensor([1.5, -2.5])
    assert x.double().dtype == np.float64 and x.long().dtype == np.int64 and x.int().dtype == np.int32
    assert x.half().dtype == np.float16 and x.bool().dtype == np.bool_ and x.long().float().dtype == np.float32
    assert x.to(torch.float64).dtype == np.float64 and x.type() == "float32"


def test_a_python_float_against_an_integer_tensor_gives_float32():
    assert (Tensor([1, 2]) * 0.5).dtype == np.float32
    assert (Tensor([1, 2]) * 2).dtype == np.int64


def test_factories_use_pytorchs_default_dtypes():
    assert torch.zeros(2, 3).shape == (2, 3) and torch.zeros((2, 3)).dtype == np.float32
    assert torch.ones(2, dtype=torch.float64).dtype == np.float64
    assert torch.arange(5).dtype == np.int64 and torch.arange(0, 1, 0.25).dtype == np.float32
    assert torch.full((2,), 7).dtype == np.int64 and torch.full((2,), 7.0).dtype == np.float32
    assert torch.tensor([1, 2]).dtype == np.int64 and torch.tensor([1.0]).dtype == np.float32
    like = torch.zeros_like(Tensor(np.ones((2, 2), np.float64)))
    assert like.dtype == np.float64 and like.numpy().sum() == 0


def test_manual_seed_makes_random_factories_repeat():
    torch.manual_seed(3)
    a = torch.randn(4)
    torch.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), torch.randn(4).numpy())
    assert torch.rand(100).numpy().min() >= 0 and torch.randint(0, 10, (50,)).dtype == np.int64


def test_a_tensor_iterates_over_its_first_axis():
    rows = list(Tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]


def test_grad_is_a_tensor_of_the_parameters_shape_and_dtype():
    w = Tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    assert isinstance(w.grad, Tensor) and w.grad.dtype == np.float32
    assert float(w.grad.sum()) == 6.0
    w.grad.zero_()
    assert w.grad.tolist() == [0.0, 0.0]


def test_assigning_an_array_to_grad_is_refused_with_the_fix():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="wrap it"):
        w.grad = np.ones(1, np.float32)
    with pytest.raises(RuntimeError, match="must match"):
        w.grad = Tensor([1.0, 2.0])


def test_in_place_sgd_under_no_grad_changes_the_model():
    model = nn.Linear(3, 1)
    before = model.weight.numpy().copy()
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    with no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    np.testing.assert_allclose(model.weight.numpy(), before - 0.1 * model.weight.grad.numpy())
    assert model.weight.is_leaf and isinstance(model.weight, nn.Parameter)


@pytest.mark.parametrize("change", ["+=", "add_", "mul_", "zero_", "setitem", "copy_", "fill_"])
def test_changing_a_leaf_that_requires_grad_in_place_raises_outside_no_grad(change):
    w = Tensor([1.0, 2.0], requires_grad=True)
    ops = {"+=": lambda: w.__iadd__(1), "add_": lambda: w.add_(1), "mul_": lambda: w.mul_(2), "zero_": w.zero_,
           "setitem": lambda: w.__setitem__(0, 5.0), "copy_": lambda: w.copy_(Tensor([3.0, 4.0])),
           "fill_": lambda: w.fill_(1.0)}
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        ops[change]()
    assert w.tolist() == [1.0, 2.0]


def test_item_assignment_on_a_tensor_without_grad_changes_it():
    x = torch.zeros(3)
    x[0] = 5
    x[1:] = Tensor([1.0, 2.0])
    assert x.tolist() == [5.0, 1.0, 2.0]


def test_changing_a_tensor_the_tape_saved_makes_backward_raise():
    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([3.0, 4.0])
    y = (w * x).sum()
    x += 1  # Mul saved x for w's gradient
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_an_optimizer_step_between_forward_and_backward_makes_backward_raise():
    w = nn.Parameter(np.ones(2, np.float32))
    w.grad = Tensor(np.ones(2, np.float32))
    loss = (w * w).sum()
    torch.optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_changing_a_view_bumps_the_version_of_the_tensor_it_views():
    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([[3.0, 4.0]])
    y = (w * x.reshape(2)).sum()
    x.view(2)[0] = 0.0  # the same memory as the x that Mul saved, through a view
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_in_place_change_of_a_recorded_tensor_says_to_write_a_new_one():
    y = Tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="x = x \\+ y"):
        y += 1


def test_an_in_place_result_that_does_not_fit_the_dtype_raises():
    x = Tensor([1, 2])
    with pytest.raises(RuntimeError, match="int64"):
        x /= 2


def test_floor_division_and_modulo_work_on_tensors_without_grad_and_refuse_grad():
    assert (Tensor([7, 8]) // 3).tolist() == [2, 2] and (Tensor([7, 8]) % 3).tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="not differentiable"):
        Tensor([1.0], requires_grad=True) // 2


def test_torch_device_names_a_device_and_models_move_to_it():
    device = torch.device("cpu")
    assert device == "cpu" and device.type == "cpu" and torch.device("cuda:0") == "cuda"
    model = nn.Linear(2, 2).to(device)
    assert model(Tensor(np.ones((1, 2), np.float32)).to(device)).device == "cpu"


def test_top_level_functions_are_the_tensor_methods():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert torch.flatten(x).shape == (6,) and torch.argmax(x, dim=1).tolist() == [2, 2]
    assert torch.max(x, 1).values.tolist() == [2.0, 5.0] and float(torch.sum(x)) == 15.0


def test_save_and_load_round_trip_a_model_and_optimizer_state(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "ckpt.npz")
    loaded = torch.load(tmp_path / "ckpt.npz")
    assert loaded["epoch"] == 3 and isinstance(loaded["model"]["0.weight"], Tensor)
    fresh = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    fresh.load_state_dict(loaded["model"])
    np.testing.assert_array_equal(fresh[0].weight.numpy(), model[0].weight.numpy())
    torch.optim.Adam(fresh.parameters(), lr=0.1).load_state_dict(loaded["optimizer"])


def test_a_pytorch_state_dict_exported_to_npz_loads(tmp_path):
    real = pytest.importorskip("torch")
    theirs = real.nn.Linear(3, 2)
    np.savez(tmp_path / "w.npz", **{k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours = nn.Linear(3, 2)
    ours.load_state_dict(torch.load(tmp_path / "w.npz"), strict=True)
    np.testing.assert_array_equal(ours.weight.numpy(), theirs.weight.detach().numpy())


def test_saving_a_whole_module_is_refused_with_the_fix(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        torch.save(nn.Linear(2, 2), tmp_path / "m.npz")


def test_loading_a_pickle_is_refused(tmp_path):
    import pickle
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError):
        torch.load(tmp_path / "p.npz")


LAYER_REFUSALS = {
    "in-channels-in-groups": (dict(groups=3), "in_channels must be divisible by groups"),
    "out-channels-in-groups": (dict(groups=2, out_channels=3), "out_channels must be divisible by groups"),
    "same-with-a-stride": (dict(padding="same", stride=2), "padding='same' is not supported for strided"),
    "unknown-padding-string": (dict(padding="full"), "Invalid padding string 'full'"),
    "no-groups": (dict(groups=0), "groups must be a positive integer"),
    "reflect-padding": (dict(padding_mode="reflect"), "padding_mode='reflect' is not supported, only 'zeros'"),
}


@pytest.mark.parametrize("case", sorted(LAYER_REFUSALS))
def test_conv2d_layer_refuses_the_settings_pytorch_refuses(case):
    kwargs, message = LAYER_REFUSALS[case]
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(**{"in_channels": 4, "out_channels": 4, "kernel_size": 3, **kwargs})


FUNCTIONAL_REFUSALS = {  # on an input (1, 4, 5, 5): weight shape, options, message
    "out-channels-in-groups": ((4, 4, 3, 3), dict(groups=3), "output channels divisible by 3"),
    "input-channels-in-groups": ((4, 3, 3, 3), dict(groups=2), "expects input with 6 channels, but got 4"),
    "same-with-a-stride": ((4, 4, 3, 3), dict(padding="same", stride=(1, 2)), "not supported for strided"),
    "no-dilation": ((4, 4, 3, 3), dict(dilation=0), "stride and dilation must be >= 1"),
    "dilated-past-the-input": ((4, 4, 3, 3), dict(dilation=3), "reaching 7x7.* larger than the padded input"),
}


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_REFUSALS))
def test_conv2d_function_refuses_the_settings_pytorch_refuses(case):
    w_shape, options, message = FUNCTIONAL_REFUSALS[case]
    with pytest.raises(ValueError, match=message):
        torch.functional.conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(*w_shape), **options)


def test_shape_and_size_are_a_torch_size_that_is_a_tuple():
    x = torch.zeros(2, 3, 4)
    assert isinstance(x.shape, torch.Size) and isinstance(x.size(), torch.Size) and isinstance(x.shape, tuple)
    assert x.shape == torch.Size([2, 3, 4]) == (2, 3, 4) and hash(x.shape) == hash((2, 3, 4))
    assert isinstance(x.shape[1:], torch.Size) and x.shape[1:] == (3, 4) and x.shape[-1] == 4
    assert isinstance(x.shape + (5,), torch.Size) and (1,) + x.shape == (1, 2, 3, 4)
    assert x.shape.numel() == 24 == x.numel() and torch.Size().numel() == 1
    n, c, h = x.shape
    assert (n, c, h) == (2, 3, 4) and str(x.shape) == "(2, 3, 4)"  # printed as the tuple it is
    with pytest.raises(TypeError, match="iterable of ints"):
        torch.Size([2.0, 3])


def test_is_tensor_and_the_default_dtype():
    assert torch.is_tensor(torch.zeros(1)) and not torch.is_tensor(np.zeros(1)) and not torch.is_tensor([1.0])
    assert torch.get_default_dtype() == torch.float32 == torch.tensor([1.0]).dtype


@pytest.mark.parametrize("name", ["rand_like", "randn_like"])
def test_random_like_factories_take_the_input_shape_dtype_and_device_and_repeat_under_manual_seed(name):
    like = getattr(torch, name)
    x = torch.zeros(3, 4, dtype=torch.float64)
    torch.manual_seed(5)
    a = like(x)
    torch.manual_seed(5)
    b = like(x)
    assert a.shape == x.shape and a.dtype == np.float64 and a.device == x.device and not a.requires_grad
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert like(x, dtype=torch.float32).dtype == np.float32 and like(x, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="floating-point dtype.*dtype=torch.float32"):
        like(torch.zeros(2, dtype=torch.int64))


def test_randint_like_draws_integers_in_the_input_dtype_and_empty_like_copies_the_shape():
    x = torch.zeros(500)
    torch.manual_seed(1)
    a = torch.randint_like(x, 3)
    assert a.dtype == np.float32 and set(a.tolist()) == {0.0, 1.0, 2.0}
    b = torch.randint_like(torch.zeros(500, dtype=torch.int64), 5, 7)
    assert b.dtype == np.int64 and set(b.tolist()) == {5, 6}
    torch.manual_seed(1)
    np.testing.assert_array_equal(torch.randint_like(x, 3).numpy(), a.numpy())
    e = torch.empty_like(torch.ones(2, 3, dtype=torch.float64))
    assert e.shape == (2, 3) and e.dtype == np.float64


TENSOR_FUNCTION_REFUSALS = {  # what PyTorch refuses too, each with the problem named (and the fix, where there is one)
    "mm-of-a-vector": (lambda: torch.mm(torch.zeros(3), torch.zeros(3, 2)), RuntimeError, "expects 2-D and 2-D"),
    "mm-inner-lengths": (lambda: torch.mm(torch.zeros(2, 3), torch.zeros(2, 2)), RuntimeError,
                         r"shapes \(2, 3\) and \(2, 2\) cannot be multiplied"),
    "bmm-batch-sizes": (lambda: torch.bmm(torch.zeros(2, 2, 3), torch.zeros(1, 3, 2)), RuntimeError,
                        "does not broadcast: use matmul"),
    "dot-lengths": (lambda: torch.dot(torch.zeros(3), torch.zeros(2)), RuntimeError, "cannot be multiplied"),
    "outer-of-a-matrix": (lambda: torch.outer(torch.zeros(2, 3), torch.zeros(2)), RuntimeError, "two 1-D"),
    "gather-index-past-the-end": (lambda: torch.gather(torch.zeros(2, 3), 1, torch.tensor([[3], [0]])), IndexError,
                                  r"must lie in \[0, 3\)"),
    "gather-negative-index": (lambda: torch.gather(torch.zeros(2, 3), 1, torch.tensor([[-1], [0]])), IndexError,
                              r"must lie in \[0, 3\)"),
    "gather-float-index": (lambda: torch.gather(torch.zeros(2, 3), 1, torch.zeros(2, 1)), TypeError, "integer tensor"),
    "gather-index-rank": (lambda: torch.gather(torch.zeros(2, 3), 1, torch.tensor([0, 1])), RuntimeError,
                          "as many"),
    "gather-index-too-long": (lambda: torch.gather(torch.zeros(2, 3), 1, torch.zeros(3, 1, dtype=torch.long)),
                              RuntimeError, "longer than the input"),
    "gather-dim": (lambda: torch.gather(torch.zeros(2, 3), 2, torch.zeros(2, 1, dtype=torch.long)), IndexError,
                   "dim 2 is out of range"),
    "masked-fill-integer-mask": (lambda: torch.zeros(3).masked_fill(torch.tensor([1, 0, 1]), 1.0), TypeError,
                                 "must be boolean"),
    "masked-fill-vector-value": (lambda: torch.zeros(3).masked_fill(torch.zeros(3) > 1, torch.ones(3)), RuntimeError,
                                 "0-d tensor.*where"),
    "topk-k-too-large": (lambda: torch.zeros(2, 3).topk(4), RuntimeError, "k=4 is out of range"),
    "sort-dim": (lambda: torch.zeros(2, 3).sort(dim=2), IndexError, "dim 2 is out of range"),
    "flip-a-dim-twice": (lambda: torch.arange(3).flip(0, -1), RuntimeError, "more than once"),
    "tril-of-a-vector": (lambda: torch.zeros(3).tril(), RuntimeError, "at least 2 dimensions"),
    "round-integers-to-decimals": (lambda: torch.tensor([15, 25]).round(decimals=-1), TypeError, r"x.float\(\)"),
    "one-hot-of-floats": (lambda: torch.functional.one_hot(torch.tensor([1.0])), TypeError, r"\.long\(\)"),
    "one-hot-negative": (lambda: torch.functional.one_hot(torch.tensor([1, -1])), ValueError, "non-negative"),
    "one-hot-too-few-classes": (lambda: torch.functional.one_hot(torch.tensor([1, 3]), 3), ValueError,
                                "not smaller than num_classes=3"),
    "one-hot-empty": (lambda: torch.functional.one_hot(torch.tensor([], dtype=torch.long)), ValueError,
                      "give num_classes"),
}


@pytest.mark.parametrize("case", sorted(TENSOR_FUNCTION_REFUSALS))
def test_tensor_functions_refuse_what_pytorch_refuses_with_a_clear_error(case):
    call, error, message = TENSOR_FUNCTION_REFUSALS[case]
    with pytest.raises(error, match=message):
        call()


def test_rounding_and_sign_record_a_gradient_of_zero_as_pytorch_does():
    x = torch.tensor([-1.5, 0.2, 2.7], requires_grad=True)
    y = x.floor() + x.ceil() + x.round() + x.trunc() + x.sign()
    assert y.requires_grad and not y.is_leaf
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_flip_returns_a_copy_as_in_pytorch():
    x = torch.arange(4)
    y = x.flip(0)
    y[0] = 100
    assert x.tolist() == [0, 1, 2, 3] and y.tolist() == [100, 2, 1, 0]


def test_sort_and_topk_return_named_values_and_indices_and_work_as_functions():
    x = torch.tensor([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]])
    values, indices = torch.topk(x, 2, dim=1)
    assert torch.topk(x, 2).values.tolist() == values.tolist() and indices.tolist() == [[1, 2], [0, 1]]
    assert indices.dtype == np.int64 and x.sort().indices.tolist() == [[0, 2, 1], [1, 2, 0]]
    assert torch.argsort(x, dim=1, descending=True).tolist() == [[1, 2, 0], [0, 1, 2]]
