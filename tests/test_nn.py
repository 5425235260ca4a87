import math

import numpy as np
import pytest

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, manual_seed, nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.features = nn.Sequential(nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(6 * 3 * 3, 10)

    def forward(self, x):
        return self.fc2(self.dropout(self.flatten(self.features(self.conv1(x)))))


def image_batch(n=4, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(dtype))


def test_parameters_are_found_in_assignment_order_with_dotted_names():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "features.0.weight", "features.0.bias",
                     "features.1.weight", "features.1.bias", "fc2.weight", "fc2.bias"]


def test_parameters_are_parameter_instances_that_require_grad():
    params = list(Block().parameters())
    assert len(params) == 8
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)


def test_buffers_are_state_but_not_parameters():
    model = Block()
    assert [name for name, _ in model.named_buffers()] == ["features.1.running_mean", "features.1.running_var",
                                                          "features.1.num_batches_tracked"]
    assert not any(b.requires_grad for b in model.buffers())
    assert list(model.state_dict()) == [
        "conv1.weight", "conv1.bias", "features.0.weight", "features.0.bias", "features.1.weight",
        "features.1.bias", "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
        "fc2.weight", "fc2.bias"]


def test_shared_parameter_is_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = self.a

    assert len(list(Tied().parameters())) == 2


def test_reassigning_an_attribute_replaces_its_registration():
    model = nn.Module()
    model.layer = nn.Linear(2, 2)
    model.layer = None
    assert list(model.parameters()) == [] and list(model.children()) == []
    model.w = nn.Parameter(np.ones(3))
    with pytest.raises(TypeError, match="Parameter"):
        model.w = Tensor(np.zeros(3))


def test_assigning_a_parameter_before_super_init_raises():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_children_and_modules_walk_the_tree():
    model = Block()
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "Sequential", "Flatten", "Dropout", "Linear"]
    assert len(list(model.modules())) == 1 + 5 + 4


def test_train_and_eval_propagate_to_every_submodule():
    model = Block()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_is_identity_in_eval_and_scales_kept_values_in_train():
    drop = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 100), dtype=np.float32))
    out = drop(x).numpy()
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


def test_dropout_rejects_p_outside_zero_one():
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.0)


def test_batchnorm_updates_running_stats_in_train_and_uses_them_in_eval():
    bn = nn.BatchNorm2d(3, momentum=0.1)
    x = np.random.default_rng(0).standard_normal((8, 3, 4, 4)) * 2 + 5
    out = bn(Tensor(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)

    bn.eval()
    before = bn.running_mean.numpy().copy()
    out = bn(Tensor(x.astype(np.float32))).numpy()
    expected = (x - before[None, :, None, None]) / np.sqrt(bn.running_var.numpy()[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)


def test_batchnorm1d_rejects_inputs_of_the_wrong_rank():
    with pytest.raises(ValueError, match="2-D input"):
        nn.BatchNorm1d(3)(Tensor(np.zeros((2, 3, 4, 4), dtype=np.float32)))


def test_state_dict_is_a_numpy_copy_that_round_trips():
    manual_seed(1)
    a = Block()
    state = a.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    a.fc2.weight.array += 1.0
    assert not np.array_equal(state["fc2.weight"], a.fc2.weight.numpy())

    manual_seed(2)
    b = Block()
    b.load_state_dict(state)
    a.load_state_dict(state)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(image_batch()).numpy(), b(image_batch()).numpy())


def test_state_dict_survives_npz_without_pickle(tmp_path):
    a, b = Block(), Block()
    np.savez(tmp_path / "model.npz", **a.state_dict())
    with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
        b.load_state_dict(saved)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_load_state_dict_copies_in_place_keeping_arrays_and_dtype():
    model = nn.Linear(3, 2)
    weight_array = model.weight.array
    state = {k: v.astype(np.float64) + 1 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.weight.array is weight_array
    assert model.weight.dtype == np.float32
    np.testing.assert_allclose(model.weight.numpy(), state["weight"], rtol=1e-6)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("fc2.weight"), "state_dict mismatch: missing key 'fc2.weight'"),
    (lambda s: s.update(x=np.zeros(1)), "state_dict mismatch: unexpected key 'x'"),
    (lambda s: s.update({"conv1.weight": np.zeros((4, 1, 5, 5))}),
     "state_dict mismatch: 'conv1.weight' has shape (4, 1, 5, 5) in the checkpoint but (4, 1, 3, 3) in the model"),
])
def test_load_state_dict_names_the_mismatch(edit, message):
    model = Block()
    state = model.state_dict()
    edit(state)
    with pytest.raises(nn.StateDictError) as error:
        model.load_state_dict(state)
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


def test_load_state_dict_names_the_first_mismatch_in_model_order():
    model = Block()
    state = model.state_dict()
    del state["fc2.bias"], state["conv1.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(nn.StateDictError, match="missing key 'conv1.bias'"):
        model.load_state_dict(state)


def test_failed_load_changes_nothing():
    model = Block()
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    state["fc2.bias"] = np.zeros(3)
    with pytest.raises(nn.StateDictError):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.conv1.weight.numpy(), before["conv1.weight"])


def test_load_state_dict_refuses_a_lossy_kind_cast():
    model = nn.Module()
    model.register_buffer("count", Tensor(np.zeros(2, dtype=np.int64)))
    with pytest.raises(nn.StateDictError, match="'count' has dtype float64"):
        model.load_state_dict({"count": np.ones(2)})


def test_non_strict_load_reports_missing_and_unexpected_keys():
    model = nn.Linear(3, 2)
    result = model.load_state_dict({"weight": np.ones((2, 3)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(model.weight.numpy(), 1)


def test_zero_grad_sets_every_grad_to_none():
    model = nn.Linear(3, 2)
    model(Tensor(np.ones((4, 3), dtype=np.float32))).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_backward_through_a_model_fills_every_parameter_grad():
    model = Block()
    F.cross_entropy(model(image_batch()), np.arange(4)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and p.grad.dtype == np.float32, name


def test_to_cpu_keeps_the_same_parameter_objects():
    model = Block()
    params = list(model.parameters())
    assert model.to("cpu") is model
    assert all(a is b for a, b in zip(params, model.parameters()))
    with pytest.raises(Exception, match="unknown device"):
        model.to("tpu")


def test_num_parameters_counts_every_element():
    assert nn.Linear(784, 10).num_parameters() == 7850
    assert nn.Linear(784, 10, bias=False).num_parameters() == 7840


def test_repr_draws_the_module_tree():
    text = repr(nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.Linear(4, 2)))
    assert text == ("Sequential(\n"
                    "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))\n"
                    "  (1): ReLU()\n"
                    "  (2): Linear(in_features=4, out_features=2, bias=True)\n"
                    ")")


def test_sequential_is_indexable_iterable_and_sized():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[1] is list(seq)[1]
    assert len(seq[:2]) == 2
    x = Tensor(np.ones((5, 2), dtype=np.float32))
    np.testing.assert_allclose(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())


def test_layers_default_to_float32_and_accept_float64():
    assert all(p.dtype == np.float32 for p in Block().parameters())
    bn = nn.BatchNorm1d(3, dtype=np.float64)
    conv = nn.Conv2d(1, 2, 3, dtype=np.float64)
    assert all(t.dtype == np.float64 for t in [*bn.parameters(), bn.running_mean, bn.running_var, *conv.parameters()])
    assert bn.num_batches_tracked.dtype == np.int64  # a count, as in PyTorch


def test_same_seed_gives_identical_initial_weights():
    manual_seed(123)
    a = Block().state_dict()
    manual_seed(123)
    b = Block().state_dict()
    manual_seed(124)
    c = Block().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["fc2.weight"], c["fc2.weight"])


def test_explicit_rng_gives_identical_weights():
    a = nn.Linear(5, 4, rng=np.random.default_rng(7))
    b = nn.Linear(5, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())


def test_default_init_is_pytorch_uniform_one_over_sqrt_fan_in():
    layer = nn.Conv2d(8, 16, 3, rng=np.random.default_rng(0))
    bound = 1 / math.sqrt(8 * 9)
    for p in (layer.weight.numpy(), layer.bias.numpy()):
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.9 * bound


@pytest.mark.parametrize("shape, fans", [((10, 20), (20, 10)), ((6, 3, 5, 5), (75, 150))])
def test_fan_in_and_fan_out_follow_pytorch(shape, fans):
    assert nn._calculate_fan_in_and_fan_out(Tensor(np.zeros(shape))) == fans


def test_gains_follow_pytorch():
    gain = nn.init.calculate_gain
    assert gain("linear") == gain("sigmoid") == 1.0
    assert gain("relu") == pytest.approx(math.sqrt(2))
    assert gain("tanh") == pytest.approx(5 / 3)
    assert gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))


def big(shape=(400, 500)):
    return Tensor(np.zeros(shape, dtype=np.float64))


def test_xavier_uniform_stays_within_its_bound_with_uniform_variance():
    w = nn.init.xavier_uniform_(big(), gain=2.0, rng=np.random.default_rng(0)).numpy()
    bound = 2.0 * math.sqrt(6 / 900)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


def test_xavier_normal_has_its_std():
    w = nn.init.xavier_normal_(big(), rng=np.random.default_rng(0)).numpy()
    assert w.std() == pytest.approx(math.sqrt(2 / 900), rel=0.01)


@pytest.mark.parametrize("nonlinearity, mode, fan", [("relu", "fan_in", 500), ("tanh", "fan_out", 400),
                                                     ("linear", "fan_in", 500), ("sigmoid", "fan_out", 400)])
def test_kaiming_normal_and_uniform_have_gain_over_sqrt_fan_std(nonlinearity, mode, fan):
    std = nn.init.calculate_gain(nonlinearity) / math.sqrt(fan)
    normal = nn.init.kaiming_normal_(big(), mode=mode, nonlinearity=nonlinearity, rng=np.random.default_rng(0))
    uniform = nn.init.kaiming_uniform_(big(), mode=mode, nonlinearity=nonlinearity, rng=np.random.default_rng(1))
    assert normal.numpy().std() == pytest.approx(std, rel=0.01)
    assert uniform.numpy().std() == pytest.approx(std, rel=0.01)
    assert np.abs(uniform.numpy()).max() <= math.sqrt(3) * std


def test_simple_initialisers_fill_in_place():
    t = Tensor(np.empty((3, 4), dtype=np.float32))
    array = t.array
    assert nn.init.zeros_(t) is t and t.array is array and np.all(t.numpy() == 0)
    assert np.all(nn.init.ones_(t).numpy() == 1)
    u = nn.init.uniform_(t, -2, -1, rng=np.random.default_rng(0)).numpy()
    assert u.min() >= -2 and u.max() <= -1 and t.dtype == np.float32
    n = nn.init.normal_(big(), mean=3.0, std=0.5, rng=np.random.default_rng(0)).numpy()
    assert n.mean() == pytest.approx(3.0, abs=0.01) and n.std() == pytest.approx(0.5, rel=0.01)


def test_init_without_rng_draws_from_the_seeded_generator():
    manual_seed(5)
    a = nn.init.normal_(big((3, 3))).numpy()
    manual_seed(5)
    np.testing.assert_array_equal(nn.init.normal_(big((3, 3))).numpy(), a)


def test_unknown_init_scheme_is_rejected():
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="orthogonal")


@pytest.mark.parametrize("scheme", nn.INITS)
def test_every_init_scheme_builds_a_layer(scheme):
    layer = nn.Linear(30, 20, init=scheme, rng=np.random.default_rng(0))
    assert layer.weight.numpy().std() > 0


def test_linear_and_conv2d_forward_equal_functional():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 6), dtype=np.float32))
    lin = nn.Linear(6, 3)
    np.testing.assert_array_equal(lin(x).numpy(), F.linear(x, lin.weight, lin.bias).numpy())
    conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
    img = image_batch()
    np.testing.assert_array_equal(conv(img).numpy(), F.conv2d(img, conv.weight, conv.bias, 2, 1).numpy())


def torch_from(module, torch_module):
    torch = pytest.importorskip("torch")
    torch_module.double().load_state_dict({k: torch.from_numpy(v) for k, v in module.state_dict().items()},
                                          strict=False)
    return torch_module


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Linear(7, 5, dtype=np.float64)
    theirs = torch_from(ours, torch.nn.Linear(7, 5))
    x = np.random.default_rng(0).standard_normal((4, 7))
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)])
def test_conv2d_matches_torch(stride, padding):
    torch = pytest.importorskip("torch")
    ours = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, dtype=np.float64)
    theirs = torch_from(ours, torch.nn.Conv2d(3, 4, 3, stride=stride, padding=padding))
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's note on its copy
@pytest.mark.parametrize("settings", [dict(groups=2, padding="same", dilation=(1, 2)),
                                      dict(groups=6, stride=(2, 1), padding=(1, 0), bias=False),
                                      dict(groups=3, padding="valid", dilation=2)], ids=["same", "depthwise", "valid"])
def test_conv2d_with_groups_loads_a_torch_state_dict_strictly_and_computes_the_same(settings):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Conv2d(6, 12, (3, 2), **settings).double()
    ours = nn.Conv2d(6, 12, (3, 2), dtype=np.float64, **settings)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=True)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).standard_normal((2, 6, 9, 8))
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_batchnorm2d_matches_torch_in_train_and_eval():
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    rng = np.random.default_rng(0)
    ours.weight.array[...] = rng.uniform(0.5, 1.5, 3)
    ours.bias.array[...] = rng.standard_normal(3)
    theirs = torch_from(ours, torch.nn.BatchNorm2d(3, momentum=0.2))
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)) * 3 + 1
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-12)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_a_module_registered_under_two_names_appears_under_both_in_state_dict():
    net = nn.Module()
    layer = nn.Linear(2, 3)
    net.a = layer
    net.b = layer
    assert set(net.state_dict()) == {"a.weight", "a.bias", "b.weight", "b.bias"}
    assert [name for name, _ in net.named_parameters()] == ["a.weight", "a.bias"]  # each tensor once
    net.load_state_dict(net.state_dict(), strict=True)


def test_a_pytorch_state_dict_of_a_model_with_a_shared_module_loads_strictly():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Module()
    theirs.a = theirs.b = torch.nn.Linear(2, 3)
    ours = nn.Module()
    ours.a = ours.b = nn.Linear(2, 3)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=True)
    np.testing.assert_array_equal(ours.b.weight.array, theirs.b.weight.detach().numpy())


@pytest.mark.parametrize("state", [[("weight", np.zeros((3, 2)))], "weights.npz", None, 3])
def test_load_state_dict_of_something_that_is_not_a_mapping_raises_a_type_error(state):
    with pytest.raises(TypeError, match="load_state_dict expects a mapping"):
        nn.Linear(2, 3).load_state_dict(state)


def test_a_pytorch_state_dict_with_batch_norm_loads_strictly_and_gives_the_same_outputs():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.LayerNorm(12),
                                 torch.nn.Linear(12, 4)).double()
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8))
    theirs(torch.tensor(x))  # one training step of the running statistics
    theirs.eval()
    ours = nn.Sequential(OrderedDict([(str(i), m) for i, m in enumerate([
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.LayerNorm(12),
        nn.Linear(12, 4)])])).to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    assert int(ours[1].num_batches_tracked) == 1
    np.testing.assert_allclose(ours.eval()(Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_a_state_dict_from_before_num_batches_tracked_still_loads_strictly():
    model = nn.BatchNorm2d(2)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict(old, strict=True)


def test_module_list_and_dict_register_their_modules_by_index_and_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1)})
    names = list(Net().state_dict())
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "heads.a.weight",
                     "heads.a.bias"]


def test_apply_visits_children_before_the_module_and_requires_grad_freezes():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Sequential"]
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_module_to_a_dtype_converts_parameters_and_float_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).to(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64


def test_loss_modules_match_their_functions():
    logits, labels = Tensor(np.random.default_rng(0).standard_normal((4, 3))), np.array([0, 2, 1, 2])
    w = Tensor(np.array([1.0, 2.0, 0.5]))
    assert float(nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)(logits, labels)) == pytest.approx(
        float(F.cross_entropy(logits, labels, weight=w, label_smoothing=0.1)))
    assert float(nn.NLLLoss(reduction="sum")(logits, labels)) == pytest.approx(
        float(F.nll_loss(logits, labels, reduction="sum")))
    assert "weight" in nn.CrossEntropyLoss(weight=w).state_dict()  # a buffer, as in PyTorch


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(i).standard_normal(s) for i, s in enumerate([(3, 2), (4,)])]
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = Tensor(g.copy()), torch.tensor(g)
    for norm_type in (2.0, 1.0, float("inf")):
        total = nn.utils.clip_grad_norm_(ours, 0.5, norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type)
        assert float(total) == pytest.approx(float(expected), rel=1e-9)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9)
