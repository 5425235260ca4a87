"""A PyTorch user's everyday tensor habits work, or fail loudly: Python values, dtypes, factories, in-place
rules, `.grad` as a Tensor. (Gradients of the ops are in test_grad_ops.py, agreement with PyTorch in
test_torch_parity.py.)"""
import warnings

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
    assert x.to(torch.float64).dtype == np.float64


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


def test_pythons_abs_and_unary_plus_work_on_tensors():
    x = Tensor([-1.5, 2.0])
    assert abs(x).tolist() == [1.5, 2.0] and (+x).tolist() == [-1.5, 2.0]


def test_a_top_level_function_refuses_what_is_not_a_tensor_naming_the_argument():
    with pytest.raises(TypeError, match="argument 'input' must be a Tensor, not list"):
        torch.exp([1.0])


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


# `.data` is PyTorch's: a tensor on the same memory, cut from the tape. The array itself is `.array`.

def test_data_is_a_tensor_on_the_same_memory_cut_from_the_tape():
    w = Tensor([1.0, 2.0], requires_grad=True)
    d = w.data
    assert isinstance(d, Tensor) and not d.requires_grad and d.grad_fn is None and d.array is w.array
    d.mul_(3.0)  # allowed on a leaf that requires grad: nothing records it, as in PyTorch
    np.testing.assert_array_equal(w.numpy(), [3.0, 6.0])
    assert isinstance(w.array, np.ndarray)


def test_torch_max_of_data_gives_values_and_indices_not_the_rows():
    """The tutorial idiom `_, predicted = torch.max(outputs.data, 1)`: on a batch of two rows, an array
    for `.data` would unpack into the two rows' maxima without an error."""
    outputs = Tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]], requires_grad=True)
    _, predicted = torch.max(outputs.data, 1)
    assert predicted.tolist() == [1, 0]
    assert outputs.data.max(1, keepdim=True)[1].tolist() == [[1], [0]]


def test_data_in_place_idioms_of_initialisation_and_hand_written_steps():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    layer.weight.data.normal_(0.0, 0.02)
    layer.bias.data.fill_(0.01)
    assert abs(float(layer.weight.std())) < 0.05 and layer.bias.tolist() == pytest.approx([0.01] * 3)
    layer.weight.data.uniform_(-0.1, 0.1)
    assert float(layer.weight.abs().max()) <= 0.1
    x = torch.randn(5, 4)
    before = layer.weight.numpy().copy()
    layer(x).sum().backward()
    for p in layer.parameters():
        p.data -= 0.5 * p.grad.data  # rebinds p.data to the same memory, changed in place
        p.grad.data.zero_()
    np.testing.assert_allclose(layer.weight.numpy(), before - 0.5 * x.numpy().sum(0), rtol=1e-6)
    assert float(layer.weight.grad.abs().sum()) == 0.0
    assert isinstance(layer.weight.data.cpu().numpy(), np.ndarray)


def test_assigning_data_replaces_the_values_and_keeps_the_gradient_flowing():
    w = Tensor([1.0, 2.0], requires_grad=True)
    w.data = torch.ones(3)
    assert w.shape == (3,) and w.requires_grad and w.is_leaf
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(TypeError, match="floating-point"):
        w.data = torch.tensor([1, 2])


def test_clamp_normal_uniform_in_place_follow_the_inplace_rules():
    x = torch.tensor([-2.0, 0.5, 3.0])
    assert x.clamp_(min=-1.0, max=1.0) is x and x.tolist() == [-1.0, 0.5, 1.0]
    assert x.clamp_(max=0.0).tolist() == [-1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="min, max or both"):
        x.clamp_()
    torch.manual_seed(3)
    a = torch.empty(1000).normal_(2.0, 0.5)
    torch.manual_seed(3)
    b = torch.empty(1000).normal_(2.0, 0.5)
    assert a.tolist() == b.tolist() and abs(float(a.mean()) - 2.0) < 0.1 and abs(float(a.std()) - 0.5) < 0.05
    u = torch.empty(1000, dtype=torch.float64).uniform_(-3.0, -1.0)
    assert u.dtype == torch.float64 and -3.0 <= float(u.min()) and float(u.max()) < -1.0
    with pytest.raises(TypeError, match="floating-point"):
        torch.zeros(3, dtype=torch.int64).normal_()
    leaf = torch.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        leaf.normal_()
    with no_grad():
        leaf.uniform_(0.0, 1.0)
    assert leaf.requires_grad and float(leaf.min()) >= 0.0


def test_hand_written_sgd_through_data_matches_pytorch():
    real = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    w0, b0 = rng.standard_normal((1, 3)), rng.standard_normal(1)
    results = []
    for lib in (torch, real):
        w = lib.tensor(w0, requires_grad=True)
        b = lib.tensor(b0, requires_grad=True)
        xs, ys = lib.tensor(x), lib.tensor(y)
        for _ in range(5):
            loss = ((xs @ w.t() + b - ys) ** 2).mean()
            loss.backward()
            w.data -= 0.1 * w.grad.data
            b.data.sub_(0.1 * b.grad.data)
            w.grad.data.zero_()
            b.grad.zero_()
        results.append((w.detach().numpy(), b.detach().numpy(), float(loss.detach())))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("expression", ["Tensor(2, 3)", "Tensor()", "FloatTensor([1, 2])", "FloatTensor(2, 3)",
                                        "FloatTensor()", "DoubleTensor([[1]])", "LongTensor([1.7, -2.2])",
                                        "LongTensor(3)", "IntTensor(2, 0)", "ByteTensor([3, 4])", "HalfTensor([0.5])",
                                        "BoolTensor([0, 2])", "FloatTensor(np.arange(3))", "LongTensor(tensor([1, 2]))"])
def test_legacy_constructors_give_pytorchs_shape_dtype_and_values(expression):
    real = pytest.importorskip("torch")
    ours = eval(expression, {"np": np, "Tensor": torch.Tensor, **vars(torch)})
    theirs = eval(expression, {"np": np, "Tensor": real.Tensor, **vars(real)})
    assert ours.shape == tuple(theirs.shape) and str(theirs.dtype) == f"torch.{ours.dtype}"
    if not expression.endswith("(2, 3)") and "(3)" not in expression:  # torch leaves those uninitialised
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_of_sizes_is_float32_zeros_and_a_stray_positional_argument_is_refused():
    assert torch.Tensor(2, 3).tolist() == [[0.0] * 3] * 2 and torch.Tensor(2, 3).dtype == np.float32
    assert torch.Tensor(2, 3, requires_grad=True).requires_grad
    for bad in [(2, True), ([1.0], True), (2, -1), (2, 1.5)]:
        with pytest.raises(TypeError, match="by keyword"):
            torch.Tensor(*bad)
    with pytest.raises(TypeError, match=r"t.to\(int64\)"):
        torch.LongTensor(torch.tensor([1.5]))


def framework(name):
    """The library a client's code runs on: this engine, or PyTorch itself where it is installed, so that
    each expectation below is checked against PyTorch too."""
    return torch if name == "tinygrad_mnist" else pytest.importorskip("torch")


FRAMEWORKS = ["tinygrad_mnist", "torch"]


def functional(lib):
    return lib.functional if lib is torch else lib.nn.functional


RUNTIME_ERRORS = {  # client code that PyTorch refuses with a RuntimeError; the engine's class, kept beside it
    "view": (lambda lib: lib.zeros(2, 3).view(4), ValueError),
    "reshape": (lambda lib: lib.zeros(2, 3).reshape(4, 2), ValueError),
    "matmul": (lambda lib: lib.zeros(2, 3) @ lib.zeros(2, 3), ValueError),
    "broadcasting": (lambda lib: lib.zeros(2, 3) + lib.zeros(4), ValueError),
    "comparison": (lambda lib: lib.zeros(2, 3) == lib.zeros(4), ValueError),
    "in-place-broadcasting": (lambda lib: lib.zeros(2, 3).add_(lib.zeros(4)), ValueError),
    "cat": (lambda lib: lib.cat([lib.zeros(2, 3), lib.zeros(3, 3)], dim=1), ValueError),
    "stack": (lambda lib: lib.stack([lib.zeros(2, 3), lib.zeros(3, 3)]), ValueError),
    "expand": (lambda lib: lib.zeros(2, 3).expand(3, 3), ValueError),
    "item-of-many": (lambda lib: lib.zeros(2, 3).item(), ValueError),
    "backward-gradient-shape": (lambda lib: (lib.zeros(2, requires_grad=True) * 2).backward(lib.zeros(3)), ValueError),
    "linear": (lambda lib: functional(lib).linear(lib.zeros(2, 3), lib.zeros(4, 4)), ValueError),
    "load-state-dict": (lambda lib: lib.nn.Linear(2, 2).load_state_dict({}), ValueError),
    "requires-grad-of-integers": (lambda lib: lib.tensor([1, 2]).requires_grad_(), TypeError),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(RUNTIME_ERRORS))
def test_what_pytorch_refuses_with_a_runtime_error_is_a_runtime_error(case, lib):
    code, _ = RUNTIME_ERRORS[case]
    with pytest.raises(RuntimeError):
        code(framework(lib))


@pytest.mark.parametrize("case", sorted(RUNTIME_ERRORS))
def test_the_engines_errors_keep_their_own_class_beside_runtime_error(case):
    code, engine_class = RUNTIME_ERRORS[case]
    with pytest.raises(engine_class):
        code(torch)


def dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


DTYPES = {  # client code -> the dtype PyTorch gives its result
    "arange-over-an-int": (lambda lib: lib.arange(4) / 4, "float32"),
    "int-scalar-over-an-int": (lambda lib: lib.tensor(3) / 2, "float32"),
    "accuracy-as-a-fraction": (lambda lib: (lib.tensor([1, 2, 3]) == lib.tensor([1, 0, 3])).sum()
                               / lib.tensor([1, 0, 3]).size(0), "float32"),
    "div-method": (lambda lib: lib.arange(4).div(2), "float32"),
    "number-over-an-int-tensor": (lambda lib: 5 / (lib.arange(4) + 1), "float32"),
    "int-tensor-over-int-tensor": (lambda lib: lib.arange(1, 5) / lib.arange(4, 0, -1), "float32"),
    "bool-over-bool": (lambda lib: lib.tensor([True, False]) / lib.tensor([True, True]), "float32"),
    "int-over-a-python-float": (lambda lib: lib.arange(4) / 2.0, "float32"),
    "int-over-float64": (lambda lib: lib.arange(4) / lib.tensor(2.0, dtype=lib.float64), "float64"),
    "float64-over-int": (lambda lib: lib.ones(2, dtype=lib.float64) / lib.arange(1, 3), "float64"),
    "float32-plus-int-over-int": (lambda lib: lib.ones(4, 2) + (lib.arange(4) / 4)[:, None], "float32"),
    "float-scalar-tensor-times-int": (lambda lib: lib.tensor(2.5) * lib.arange(4), "float32"),
    "int-times-a-python-float": (lambda lib: lib.arange(4) * 0.5, "float32"),
    "floor-rounding-of-ints": (lambda lib: lib.tensor([-7, 7, 6]).div(2, rounding_mode="floor"), "int64"),
    "trunc-rounding-of-ints": (lambda lib: lib.tensor([-7, 7, -6, -1]).div(2, rounding_mode="trunc"), "int64"),
    "trunc-rounding-of-floats": (lambda lib: lib.tensor([-7.0, 7.5]).div(2, rounding_mode="trunc"), "float32"),
    "int-floor-divided-by-a-float": (lambda lib: lib.arange(5) // 2.0, "float32"),
    "int-modulo-a-float": (lambda lib: lib.arange(5) % 2.0, "float32"),
    "mean-of-ints-with-a-dtype": (lambda lib: lib.arange(4).mean(dtype=lib.float32), "float32"),
    "sum-with-a-dtype": (lambda lib: lib.ones(2, 3).sum(1, dtype=lib.float64), "float64"),
    "softmax-of-ints-with-a-dtype": (lambda lib: lib.arange(4).softmax(0, dtype=lib.float32), "float32"),
    "logsumexp-of-ints": (lambda lib: lib.arange(4).logsumexp(0), "float32"),
    **{f"{name}-of-ints": ((lambda name: lambda lib: getattr(lib.arange(1, 4), name)())(name), "float32")
       for name in ("sqrt", "rsqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid")},
    "sigmoid-of-bools": (lambda lib: lib.tensor([True, False]).sigmoid(), "float32"),
    "abs-of-ints": (lambda lib: lib.arange(-2, 2).abs(), "int64"),
    "prod-of-ints": (lambda lib: lib.arange(1, 4).prod(), "int64"),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(DTYPES))
def test_integer_and_mixed_arithmetic_gives_pytorchs_dtype(case, lib):
    code, dtype = DTYPES[case]
    out = code(framework(lib))
    assert dtype_name(out) == dtype
    if lib == "torch":  # and the engine's values are PyTorch's
        np.testing.assert_allclose(code(torch).numpy(), out.numpy(), rtol=1e-6)


INTEGER_REFUSALS = {  # PyTorch computes these in floating point only, and says so
    "mean": lambda lib: lib.arange(4).mean(),
    "mean-of-a-comparison": lambda lib: (lib.arange(4) == 2).mean(),
    "var": lambda lib: lib.arange(4).var(),
    "std": lambda lib: lib.arange(4).std(),
    "norm": lambda lib: lib.arange(4).norm(),
    "softmax": lambda lib: lib.arange(4).softmax(0),
    "log-softmax": lambda lib: lib.arange(4).log_softmax(0),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(INTEGER_REFUSALS))
def test_floating_point_reductions_of_an_integer_tensor_are_refused(case, lib):
    with pytest.raises(RuntimeError):
        INTEGER_REFUSALS[case](framework(lib))


def test_the_refusal_of_an_integer_mean_says_how_to_convert():
    with pytest.raises(torch.DtypeError, match=r"needs a floating-point tensor.*x\.float\(\)\.mean\(\)"):
        torch.arange(4).mean()


def test_rounded_division_has_no_gradient_and_refuses_an_unknown_mode():
    with pytest.raises(RuntimeError, match="not differentiable"):
        Tensor([1.5], requires_grad=True).div(2, rounding_mode="floor")
    with pytest.raises(ValueError, match="rounding_mode must be None, 'trunc' or 'floor'"):
        Tensor([1.5]).div(2, rounding_mode="round")


WHERE = {  # torch.where(condition, a, b) with numbers for a or b -> the dtype PyTorch gives
    "two-python-floats": (lambda lib, c: lib.where(c, 1.0, 0.0), "float32"),
    "two-python-ints": (lambda lib, c: lib.where(c, 1, 0), "int64"),
    "an-int-and-a-float": (lambda lib, c: lib.where(c, 1, 0.5), "float32"),
    "two-bools": (lambda lib, c: lib.where(c, True, False), "bool"),
    "a-float64-tensor-and-a-float": (lambda lib, c: lib.where(c, lib.ones(3, dtype=lib.float64), 0.5), "float64"),
    "an-int-tensor-and-a-float": (lambda lib, c: lib.where(c, lib.arange(3), 0.5), "float32"),
    "a-float-and-a-float32-tensor": (lambda lib, c: lib.where(c, 2.0, lib.ones(3)), "float32"),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(WHERE))
def test_where_with_numbers_for_either_side_gives_pytorchs_dtype_and_values(case, lib):
    code, dtype = WHERE[case]
    lib = framework(lib)
    out = code(lib, lib.tensor([True, False, True]))
    assert dtype_name(out) == dtype
    expected = code(torch, torch.tensor([True, False, True]))
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


NONZERO = {  # the index tensors PyTorch gives
    "where-of-a-condition-alone": (lambda lib, x: lib.where(x > 0), [[0, 1], [0, 1]]),
    "nonzero-as-rows": (lambda lib, x: x.nonzero(), [[[0, 0], [1, 0], [1, 1]]]),
    "torch-nonzero-as-a-tuple": (lambda lib, x: lib.nonzero(x, as_tuple=True), [[0, 1, 1], [0, 0, 1]]),
    "nonzero-of-a-scalar": (lambda lib, x: lib.tensor(5).nonzero(as_tuple=True), [[0]]),
    "nonzero-of-zero": (lambda lib, x: lib.tensor(0.0).nonzero(as_tuple=True), [[]]),
    "nonzero-rows-of-a-scalar": (lambda lib, x: lib.tensor(5).nonzero(), [[[]]]),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(NONZERO))
def test_where_of_a_condition_and_nonzero_give_pytorchs_int64_indices(case, lib):
    code, expected = NONZERO[case]
    lib = framework(lib)
    out = code(lib, lib.tensor([[3, 0], [-1, 2]]))
    out = list(out) if isinstance(out, tuple) else [out]
    assert all(dtype_name(t) == "int64" for t in out)
    assert [t.tolist() for t in out] == expected


def test_the_norm_and_std_at_zero_have_gradient_zero_and_warn_of_nothing():
    x = Tensor([0.0, 0.0, 0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x.norm() + x.norm(p=3) + x.std()).backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_logsumexp_of_a_row_of_minus_infinity_is_minus_infinity():
    x = Tensor([[-np.inf, -np.inf], [0.0, -np.inf]])
    assert x.logsumexp(1).tolist() == [-np.inf, 0.0]


@pytest.mark.parametrize("p", [-1, -0.5, "nuc"])
def test_a_norm_order_the_engine_lacks_is_refused_by_name(p):
    with pytest.raises(ValueError, match="norm: p must be 0, a positive number, math.inf, -math.inf or 'fro'"):
        Tensor([1.0, 2.0]).norm(p=p)


@pytest.mark.parametrize("p", [0, float("-inf")])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (1, True), ((0, 1), False)])
def test_norm_zero_counts_nonzeros_and_minus_infinity_is_the_least_magnitude_as_in_pytorch(p, dim, keepdim):
    real = pytest.importorskip("torch")
    x = np.array([[0.0, -3.0, 2.0], [0.0, 0.0, -0.5]])
    ours, theirs = Tensor(x, requires_grad=True), real.tensor(x, requires_grad=True)
    out, expected = ours.norm(p, dim, keepdim), real.norm(theirs, p, dim, keepdim)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy())
    out.sum().backward(), expected.sum().backward()
    # PyTorch leaves .grad None after a count (p = 0): no gradient, which is zeros here
    np.testing.assert_allclose(ours.grad.numpy(), 0 if theirs.grad is None else theirs.grad.numpy())


KEYWORDS = {  # PyTorch's keyword spellings (and its NumPy aliases axis= and keepdims=), on x of shape (2, 3, 4)
    "transpose-dim0-dim1": lambda lib, x: x.transpose(dim0=0, dim1=2),
    "torch-transpose-dim0-dim1": lambda lib, x: lib.transpose(x, dim0=0, dim1=2),
    "swapaxes-axis0-axis1": lambda lib, x: x.swapaxes(axis0=0, axis1=1),
    "torch-swapdims-dim0-dim1": lambda lib, x: lib.swapdims(x, dim0=0, dim1=1),
    "split-split-size": lambda lib, x: x.split(split_size=3, dim=2),
    "torch-split-split-size-or-sections": lambda lib, x: lib.split(x, split_size_or_sections=[1, 3], dim=2),
    "reshape-shape": lambda lib, x: x.reshape(shape=(6, 4)),
    "torch-reshape-shape": lambda lib, x: lib.reshape(x, shape=(-1,)),
    "view-size": lambda lib, x: x.view(size=(4, 6)),
    "permute-dims": lambda lib, x: x.permute(dims=(2, 0, 1)),
    "expand-size": lambda lib, x: x[:1].expand(size=(3, 3, 4)),
    "cat-axis": lambda lib, x: lib.cat([x, x], axis=1),
    "concat-axis": lambda lib, x: lib.concat([x, x], axis=2),
    "stack-axis": lambda lib, x: lib.stack([x, x], axis=1),
    "sum-axis-keepdims": lambda lib, x: x.sum(axis=1, keepdims=True),
    "mean-axis": lambda lib, x: x.mean(axis=1),
    "amax-axis-keepdims": lambda lib, x: x.amax(axis=1, keepdims=True),
    "amin-axis-tuple": lambda lib, x: x.amin(axis=(0, 1)),
    "argmax-axis-keepdims": lambda lib, x: x.argmax(axis=2, keepdims=True),
    "prod-axis-keepdims": lambda lib, x: x.prod(axis=1, keepdims=True),
    "logsumexp-axis": lambda lib, x: x.logsumexp(axis=1),
    "softmax-axis": lambda lib, x: x.softmax(axis=1),
    "log-softmax-axis": lambda lib, x: x.log_softmax(axis=0),
    "squeeze-axis": lambda lib, x: x[:1].squeeze(axis=0),
    "unsqueeze-axis": lambda lib, x: x.unsqueeze(axis=1),
    "any-axis": lambda lib, x: (x > 3).any(axis=1),
    "all-axis-keepdims": lambda lib, x: (x > 3).all(axis=1, keepdims=True),
    "mean-dtype": lambda lib, x: x.mean(dtype=lib.float64),
    "sum-dtype": lambda lib, x: x.sum(2, dtype=lib.float64),
    "prod-dtype": lambda lib, x: (x[0, 0] + 1).prod(dtype=lib.float64),
}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(KEYWORDS))
def test_pytorchs_keyword_names_and_aliases_are_accepted(case, lib):
    lib = framework(lib)
    out = KEYWORDS[case](lib, lib.arange(24.0).reshape(2, 3, 4) / 10)
    expected = KEYWORDS[case](torch, torch.arange(24.0).reshape(2, 3, 4) / 10)
    out, expected = (list(t) if isinstance(t, tuple) else [t] for t in (out, expected))
    assert [dtype_name(t) for t in out] == [dtype_name(t) for t in expected]
    for a, b in zip(out, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


TYPES = {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "float16": "torch.HalfTensor",
         "int64": "torch.LongTensor", "int32": "torch.IntTensor", "int16": "torch.ShortTensor",
         "int8": "torch.CharTensor", "uint8": "torch.ByteTensor", "bool": "torch.BoolTensor"}


@pytest.mark.parametrize("lib", FRAMEWORKS)
@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_type_names_the_tensor_type_as_pytorch_does_and_converts_to_one(dtype, lib):
    lib = framework(lib)
    x = lib.zeros(2, dtype=getattr(lib, dtype))
    assert x.type() == TYPES[dtype]
    assert dtype_name(lib.zeros(2).type(TYPES[dtype])) == dtype and dtype_name(x.type(lib.float64)) == "float64"


def test_type_refuses_a_name_that_is_no_tensor_type():
    with pytest.raises(ValueError, match="unknown tensor type 'torch.Float'"):
        Tensor([1.0]).type("torch.Float")


def test_nn_functional_init_and_utils_import_as_pytorch_spells_them():
    """`import torch.nn.functional as F`, `import torch.nn.init`, `from torch.nn.utils import ...` with the
    package name swapped, and `nn.functional.relu` as an attribute."""
    import importlib
    F = importlib.import_module("tinygrad_mnist.nn.functional")
    init = importlib.import_module("tinygrad_mnist.nn.init")
    utils = importlib.import_module("tinygrad_mnist.nn.utils")
    assert F is torch.functional and F is nn.functional and init is nn.init and utils is nn.utils
    exec("from tinygrad_mnist.nn.init import kaiming_uniform_\nfrom tinygrad_mnist.nn.utils import clip_grad_norm_", {})
    assert nn.functional.relu(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


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


# repeat, scatter, diag and trace, against PyTorch in float64 (values and gradients)

SHAPING = {
    "repeat": lambda lib, x, y: x.repeat(2, 1, 3),
    "repeat-new-dims": lambda lib, x, y: x.repeat(2, 1, 1, 2),
    "scatter-src": lambda lib, x, y: x.scatter(1, lib.tensor([[2, 0], [1, 0]]), y),  # no repeats: see FROM_PYTORCH
    "scatter-value": lambda lib, x, y: lib.scatter(x, 0, lib.tensor([[1, 0, 1]]), 7.5) * y.sum(),
    "diag-of-matrix": lambda lib, x, y: lib.diag(x.reshape(3, 2), -1) + lib.diag(x.reshape(2, 3), 1),
    "diag-of-vector": lambda lib, x, y: lib.diag(x.reshape(-1)[:3], 1) @ lib.diag(y.reshape(-1), -2)[:4, :4],
    "trace": lambda lib, x, y: x.reshape(3, 2)[:2].trace() * y,
}


@pytest.mark.parametrize("name", SHAPING)
def test_repeat_scatter_diag_and_trace_match_pytorch_in_values_and_gradients(name):
    real = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    results = []
    for lib in (torch, real):
        a, b = lib.tensor(x, requires_grad=True), lib.tensor(y, requires_grad=True)
        out = SHAPING[name](lib, a, b)
        cotangent = lib.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape)))
        (out * cotangent).sum().backward()
        results.append([t.detach().numpy() if t is not None else np.zeros(1) for t in (out, a.grad, b.grad)])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_the_one_hot_idiom_scatter_in_place_matches_pytorch_and_respects_the_inplace_rules():
    labels = torch.tensor([1, 3, 0])
    one_hot = torch.zeros(3, 4).scatter_(1, labels.unsqueeze(1), 1)
    assert one_hot.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]] and one_hot.dtype == np.float32
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        torch.zeros(3, 4, requires_grad=True).scatter_(1, labels.unsqueeze(1), 1.0)
    with pytest.raises(IndexError, match=r"index values must lie in \[0, 4\)"):
        torch.zeros(3, 4).scatter_(1, torch.tensor([[4], [0], [0]]), 1.0)
    with pytest.raises(ValueError, match="reduce='add' is not supported"):
        torch.zeros(3, 4).scatter(1, labels.unsqueeze(1), 1.0, reduce="add")
    with pytest.raises(ValueError, match="scatter_: reduce='multiply' is not supported"):
        torch.ones(3, 4).scatter_(1, labels.unsqueeze(1), 2.0, reduce="multiply")
    with pytest.raises(RuntimeError, match="at least one count per dimension"):
        torch.zeros(2, 3).repeat(2)
    with pytest.raises(RuntimeError, match="trace: expects a matrix"):
        torch.zeros(3).trace()
