import inspect

import numpy as np
import pytest

from tinygrad_mnist import Tensor, load, nn, optim, save
from tinygrad_mnist.checkpoint import load_checkpoint

from old_formats import old_optimizer_layout, save_as_format_1
from tinygrad_mnist.optim import lr_scheduler

# A separable convex quadratic per parameter: loss = Σ ½ h (θ - c)², so ∇ = h (θ - c).
RNG = np.random.default_rng(0)
SHAPES = [(3, 4), (4,)]
CURVATURE = [RNG.uniform(0.5, 3.0, s) for s in SHAPES]
CENTRES = [RNG.standard_normal(s) for s in SHAPES]
START = [RNG.standard_normal(s) for s in SHAPES]


def gradients(values):
    return [h * (v - c) for h, v, c in zip(CURVATURE, values, CENTRES)]


def loss(values):
    return sum(float((0.5 * h * (v - c) ** 2).sum()) for h, v, c in zip(CURVATURE, values, CENTRES))


def make_params(dtype=np.float64):
    return [nn.Parameter(s.astype(dtype)) for s in START]


def run(opt, params, steps):
    for _ in range(steps):
        for p, g in zip(params, gradients([p.numpy() for p in params])):
            p.grad = Tensor(g.astype(p.dtype))
        opt.step()
        opt.zero_grad()


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.3)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.3)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
    ("Adadelta", dict(lr=1.0, eps=1e-3)),  # eps as small as the default 1e-6 crawls for the 30-step tests
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, betas=(0.5, 0.9), amsgrad=True)),
]
IDS = [f"{name}-{'-'.join(kw)}" for name, kw in CONFIGS]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_optimizer_matches_torch_step_by_step(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = make_params()
    theirs = [torch.tensor(s, requires_grad=True) for s in START]
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(20):
        for p, g in zip(ours, gradients([p.numpy() for p in ours])):
            p.grad = Tensor(g)
        for p, g in zip(theirs, gradients([p.detach().numpy() for p in theirs])):
            p.grad = torch.from_numpy(g)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"step {step}")


# PyTorch's keyword arguments beyond the update rules above: gradient ascent, AdamW's decay in Adam, and
# the implementation switches, which give the same trajectory (fused kernels round differently, within 1e-10).
KEYWORDS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, maximize=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.3, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict(lr=1.0, eps=1e-3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.3, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), foreach=True)),
    ("AdamW", dict(lr=0.05, fused=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, fused=True, foreach=False)),
    ("RMSprop", dict(lr=0.01, foreach=True, capturable=False)),
    ("Adagrad", dict(lr=0.1, fused=True)),
    ("Adadelta", dict(foreach=False, eps=1e-3)),
]


@pytest.mark.parametrize("name, kwargs", KEYWORDS, ids=[f"{n}-{'-'.join(kw)}" for n, kw in KEYWORDS])
def test_pytorch_s_keyword_arguments_give_torch_s_trajectory(name, kwargs):
    test_optimizer_matches_torch_step_by_step(name, kwargs)


@pytest.mark.parametrize("name, kwargs", KEYWORDS[:6], ids=[n for n, _ in KEYWORDS[:6]])
def test_maximize_climbs_the_quadratic_it_would_descend(name, kwargs):
    params = make_params()
    start = loss([p.numpy() for p in params])
    run(getattr(optim, name)(params, **kwargs), params, 10)
    assert loss([p.numpy() for p in params]) > start


def test_adam_with_decoupled_weight_decay_is_adamw_bit_for_bit():
    a, b = make_params(), make_params()
    run(optim.Adam(a, lr=0.05, weight_decay=0.3, decoupled_weight_decay=True), a, 10)
    run(optim.AdamW(b, lr=0.05, weight_decay=0.3), b, 10)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_capturable_changes_nothing():
    a, b = make_params(), make_params()
    run(optim.Adam(a, lr=0.05, capturable=True), a, 5)
    run(optim.Adam(b, lr=0.05), b, 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"])
def test_signatures_and_defaults_are_torch_s(name):
    torch = pytest.importorskip("torch")

    def parameters(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]
    assert parameters(getattr(optim, name)) == parameters(getattr(torch.optim, name))
    ours, theirs = getattr(optim, name)(make_params()), getattr(torch.optim, name)([torch.zeros(2)])
    assert ours.defaults == theirs.defaults


def test_differentiable_is_refused_in_one_line():
    with pytest.raises(ValueError, match="differentiable=True is not supported") as error:
        optim.Adam(make_params(), differentiable=True)
    assert "\n" not in str(error.value)


def test_foreach_and_fused_together_are_refused_as_in_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        torch.optim.Adam([torch.zeros(2, requires_grad=True)], foreach=True, fused=True)
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        optim.Adam(make_params(), foreach=True, fused=True)


def test_adadelta_with_pytorchs_defaults_matches_torch():
    test_optimizer_matches_torch_step_by_step("Adadelta", {})


def test_param_groups_match_torch_with_their_own_hyper_parameters():
    torch = pytest.importorskip("torch")
    ours = make_params()
    theirs = [torch.tensor(s, requires_grad=True) for s in START]
    opt = optim.SGD([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.01, "momentum": 0.5}], lr=0.1)
    ref = torch.optim.SGD([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.01, "momentum": 0.5}], lr=0.1)
    for _ in range(10):
        for p, g in zip(ours, gradients([p.numpy() for p in ours])):
            p.grad = Tensor(g)
        for p, g in zip(theirs, gradients([p.detach().numpy() for p in theirs])):
            p.grad = torch.from_numpy(g)
        opt.step(), ref.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_optimizer_decreases_a_convex_quadratic(name, kwargs):
    params = make_params()
    opt = getattr(optim, name)(params, **kwargs)
    start = loss([p.numpy() for p in params])
    run(opt, params, 30)
    assert loss([p.numpy() for p in params]) < 0.8 * start


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_float32_parameters_and_state_stay_float32(name, kwargs):
    params = make_params(np.float32)
    opt = getattr(optim, name)(params, **kwargs)
    run(opt, params, 3)
    assert all(p.dtype == np.float32 for p in params)
    arrays = [v for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)]
    assert all(a.dtype == np.float32 for a in arrays)


def round_trip(state, tmp_path):
    """`state` saved with torch.save (tinygrad_mnist.save) and loaded back, as a checkpoint would be."""
    save(state, tmp_path / "state.npz")
    return load(tmp_path / "state.npz")


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_state_dict_round_trip_through_a_file_continues_identically(name, kwargs, tmp_path):
    params = make_params()
    opt = getattr(optim, name)(params, **kwargs)
    run(opt, params, 5)
    state = round_trip(opt.state_dict(), tmp_path)

    resumed = [nn.Parameter(p.numpy().copy()) for p in params]
    fresh = getattr(optim, name)(resumed, lr=1.0) if name == "SGD" else getattr(optim, name)(resumed)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0].keys() == opt.param_groups[0].keys()
    run(opt, params, 5)
    run(fresh, resumed, 5)
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_state_dict_has_torch_s_layout_keys_and_types(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = make_params(), [torch.tensor(s, requires_grad=True) for s in START]
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for params, grads in ((ours, lambda g: Tensor(g)), (theirs, torch.from_numpy)):
        for p, g in zip(params, gradients([np.asarray(p.detach().numpy()) for p in params])):
            p.grad = grads(g)
    opt.step(), ref.step()
    mine, want = opt.state_dict(), ref.state_dict()
    assert [list(g) for g in mine["param_groups"]] == [list(g) for g in want["param_groups"]]
    for got, expected in zip(mine["param_groups"], want["param_groups"]):
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
        assert got == expected
    assert list(mine["state"]) == list(want["state"])
    for index, entries in want["state"].items():
        assert list(mine["state"][index]) == list(entries)
        for key, value in entries.items():
            got = mine["state"][index][key]
            assert isinstance(got, Tensor) and str(got.dtype) == str(value.dtype).removeprefix("torch.")
            np.testing.assert_allclose(got.numpy(), value.numpy(), rtol=1e-12, err_msg=key)


def test_state_dict_tensors_share_the_optimizer_s_memory_as_in_torch():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 2)
    state = opt.state_dict()
    assert state["param_groups"][0]["lr"] == 0.1 and state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert state["param_groups"][0]["params"] == [0, 1]
    step, exp_avg = state["state"][1]["step"], state["state"][1]["exp_avg"]
    assert step.dtype == np.float32 and step.shape == () and step.item() == 2.0
    kept = exp_avg.clone()
    run(opt, params, 1)
    assert step.item() == 3.0 and not np.array_equal(exp_avg.numpy(), kept.numpy())
    np.testing.assert_array_equal(exp_avg.numpy(), opt.state[params[1]]["exp_avg"])


@pytest.mark.parametrize("name, kwargs", CONFIGS[::3], ids=IDS[::3])
def test_a_checkpoint_file_in_the_former_layout_loads_and_continues_identically(name, kwargs, tmp_path):
    params = make_params()
    opt = getattr(optim, name)(params, **kwargs)
    run(opt, params, 5)
    save_as_format_1(tmp_path / "old.npz", {"optimizer": old_optimizer_layout(opt.state_dict())})
    state = load_checkpoint(tmp_path / "old.npz")["optimizer"]
    assert all(type(k) is str for k in state["state"]) and list(state["param_groups"]) == ["0"]

    resumed = [nn.Parameter(p.numpy().copy()) for p in params]
    fresh = getattr(optim, name)(resumed, lr=1.0) if name == "SGD" else getattr(optim, name)(resumed)
    fresh.load_state_dict(state)
    run(opt, params, 5)
    run(fresh, resumed, 5)
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_of_a_model_s_state_dict_names_what_it_expects():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"expects an optimizer's state_dict .* got keys \['weight', 'bias'\]"):
        optim.SGD(model.parameters()).load_state_dict(model.state_dict())


def test_load_state_dict_rejects_a_different_layout():
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    other = optim.SGD(make_params()[:1], lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        other.load_state_dict(opt.state_dict())


def test_parameters_without_grad_are_skipped():
    params = make_params()
    opt = optim.AdamW(params, lr=0.1, weight_decay=0.5)
    params[0].grad = Tensor(np.ones_like(params[0].array))
    opt.step()
    np.testing.assert_array_equal(params[1].numpy(), START[1])
    assert params[1] not in opt.state
    assert list(opt.state_dict()["state"]) == [0]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_state_dict_lists_the_parameters_torch_s_does_when_one_has_no_gradient(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = make_params(), [torch.tensor(s, requires_grad=True) for s in START]
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    ours[1].grad, theirs[1].grad = Tensor(np.ones(SHAPES[1])), torch.ones(SHAPES[1], dtype=torch.float64)
    opt.step(), ref.step()
    assert {i: list(s) for i, s in opt.state_dict()["state"].items()} == \
        {i: list(s) for i, s in ref.state_dict()["state"].items()}


def test_zero_grad_sets_grads_to_none():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    params[0].grad = Tensor(np.ones_like(params[0].array))
    opt.zero_grad()
    assert params[0].grad is None


def test_changing_group_lr_changes_the_step():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    params[0].grad = Tensor(np.ones_like(params[0].array))
    opt.step()
    np.testing.assert_allclose(params[0].numpy(), START[0] - 0.5)


def test_optimizer_updates_a_model_trained_by_backward():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 5)).astype(np.float32))
    y = x.numpy() @ rng.standard_normal((5, 1)).astype(np.float32)
    model = nn.Linear(5, 1, rng=rng)
    opt = optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        out = ((model(x) - Tensor(y)) ** 2).mean()
        out.backward()
        opt.step()
        losses.append(out.item())
    assert losses[-1] < 0.05 * losses[0]


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=0.0), "lr must be positive"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr must be positive"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas must lie in \[0, 1\)"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), r"betas must lie in \[0, 1\)"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov needs momentum"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "momentum must be >= 0"),
    (lambda p: optim.SGD([{"params": p}, {"params": p[:1]}], lr=0.1), "appears twice"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.Adam(iter([])), "empty parameter list"),
    (lambda p: optim.SGD(p, maximize="yes"), "maximize must be True or False"),
    (lambda p: optim.Adagrad(p, fused=1.0), "fused must be None, False or True"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_params())


def lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        assert optimizer.param_groups[0]["lr"] == out[-1]
        optimizer.step()
        scheduler.step()
    return out


def torch_lrs(torch, make_scheduler, steps, optimizer="SGD", **opt_kwargs):
    p = torch.zeros(2, requires_grad=True)
    opt = getattr(torch.optim, optimizer)([p], **opt_kwargs)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        opt.step()
        scheduler.step()
    return out, opt


SCHEDULES = {  # each takes last_epoch=... too
    "StepLR": (lambda m, o, **kw: m.StepLR(o, step_size=3, gamma=0.5, **kw), 12),
    "MultiStepLR": (lambda m, o, **kw: m.MultiStepLR(o, milestones=[7, 2, 7, 15], gamma=0.5, **kw), 20),
    "ExponentialLR": (lambda m, o, **kw: m.ExponentialLR(o, gamma=0.9, **kw), 20),
    "LinearLR": (lambda m, o, **kw: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=8, **kw), 20),
    "LambdaLR": (lambda m, o, **kw: m.LambdaLR(o, lambda epoch: 1 / (1 + epoch) ** 0.5, **kw), 20),
    "OneCycleLR-epochs": (lambda m, o, **kw: m.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=5, **kw), 20),
    "CosineAnnealingLR": (lambda m, o, **kw: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01, **kw), 20),
    "OneCycleLR-cos": (lambda m, o, **kw: m.OneCycleLR(o, max_lr=1.0, total_steps=20, **kw), 20),
    "OneCycleLR-linear": (lambda m, o, **kw: m.OneCycleLR(o, max_lr=0.5, total_steps=17, pct_start=0.25,
                                                          anneal_strategy="linear", div_factor=10.0, **kw), 17),
    "OneCycleLR-three-phase": (lambda m, o, **kw: m.OneCycleLR(o, max_lr=1.0, total_steps=20, three_phase=True,
                                                               **kw), 20),
    "OneCycleLR-three-phase-linear": (lambda m, o, **kw: m.OneCycleLR(
        o, max_lr=0.5, total_steps=17, pct_start=0.2, anneal_strategy="linear", three_phase=True, **kw), 17),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_scheduler_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, steps = SCHEDULES[name]
    expected, _ = torch_lrs(torch, make, steps, lr=0.1, momentum=0.9)
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    assert lrs(make(lr_scheduler, opt), opt, steps) == expected  # PyTorch's formulas, to the last bit


def resumed_lrs(torch, make, before, after, how):
    """The lr of `after` steps following `before` steps of a schedule that was resumed `how`: "last_epoch"
    (a new scheduler with last_epoch=before-1 on the restored optimizer) or "scheduler only" (a new
    scheduler on a new optimizer, then load_state_dict of the old scheduler's state). With `torch` the
    torch module, in PyTorch; with None, here."""
    optim_module = optim if torch is None else torch.optim
    schedulers = optim_module.lr_scheduler
    tensor = (lambda: nn.Parameter(np.zeros(2))) if torch is None else \
        (lambda: torch.zeros(2, dtype=torch.float64, requires_grad=True))
    opt = optim_module.SGD([tensor()], lr=0.1, momentum=0.9)
    scheduler = make(schedulers, opt)
    for _ in range(before):
        opt.step(), scheduler.step()
    fresh = optim_module.SGD([tensor()], lr=0.1, momentum=0.9)
    if how == "last_epoch":
        fresh.load_state_dict(opt.state_dict())
        scheduler = make(schedulers, fresh, last_epoch=before - 1)
    else:
        state = scheduler.state_dict()
        scheduler = make(schedulers, fresh)
        scheduler.load_state_dict(state)
    out = []
    for _ in range(after):
        out.append(fresh.param_groups[0]["lr"])
        fresh.step(), scheduler.step()
    return out


@pytest.mark.parametrize("how", ["last_epoch", "scheduler only"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_a_resumed_scheduler_goes_on_as_torch_s_does(name, how):
    torch = pytest.importorskip("torch")
    make, steps = SCHEDULES[name]
    before = steps // 3
    expected = resumed_lrs(torch, make, before, steps - before, how)
    assert resumed_lrs(None, make, before, steps - before, how) == pytest.approx(expected, rel=1e-14)


def test_step_lr_resumed_without_the_optimizer_goes_on_from_the_optimizer_s_lr_as_torch_s():
    # PyTorch's StepLR multiplies the current lr: a fresh optimizer's 0.1 becomes 0.05 at the next multiple
    # of step_size, though the schedule had already reached 0.1 · 0.5².
    assert resumed_lrs(None, SCHEDULES["StepLR"][0], 7, 4, "scheduler only") == [0.1, 0.1, 0.05, 0.05]


def test_last_epoch_without_a_restored_optimizer_is_a_key_error_naming_the_fix():
    with pytest.raises(KeyError, match="initial_lr.*load the optimizer's state_dict first"):
        optim.StepLR(optim.SGD(make_params(), lr=0.1), step_size=2, last_epoch=3)


@pytest.mark.parametrize("last_epoch", [-2, 1.5, True])
def test_last_epoch_must_be_an_int_from_minus_one(last_epoch):
    with pytest.raises(ValueError, match="last_epoch must be an int >= -1"):
        optim.StepLR(optim.SGD(make_params(), lr=0.1), step_size=2, last_epoch=last_epoch)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR",
                                  "LambdaLR", "OneCycleLR", "ReduceLROnPlateau"])
def test_scheduler_signatures_are_torch_s(name):
    torch = pytest.importorskip("torch")

    def parameters(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]
    assert parameters(getattr(lr_scheduler, name)) == parameters(getattr(torch.optim.lr_scheduler, name))


def test_linear_warmup_matches_torch_sequential_lr():
    torch = pytest.importorskip("torch")

    def theirs(m, o):
        warm = m.LinearLR(o, start_factor=1 / 4, end_factor=1.0, total_iters=3)
        return m.SequentialLR(o, [warm, m.CosineAnnealingLR(o, T_max=10)], milestones=[4])

    expected, _ = torch_lrs(torch, theirs, 16, lr=0.2)
    opt = optim.SGD(make_params(), lr=0.2)
    ours = optim.LinearWarmup(opt, warmup_steps=4, after=optim.CosineAnnealingLR(opt, T_max=10))
    np.testing.assert_allclose(lrs(ours, opt, 16), expected, rtol=1e-12, atol=1e-15)


PLATEAU = [dict(), dict(mode="max", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs", cooldown=2,
                   min_lr=0.02)]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=["defaults", "max-abs-cooldown-min_lr"])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.95, 0.97, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94] * 3
    p = torch.zeros(2, requires_grad=True)
    ref_opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **{"patience": 2, **kwargs})
    opt = optim.SGD(make_params(), lr=0.1)
    ours = lr_scheduler.ReduceLROnPlateau(opt, **{"patience": 2, **kwargs})
    for i, m in enumerate(metrics):
        ref.step(m)
        ours.step(m)
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12), f"epoch {i}"


def test_reduce_lr_on_plateau_state_dict_resumes(tmp_path):
    opt = optim.SGD(make_params(), lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for m in [1.0, 1.0, 1.0]:
        sched.step(m)
    opt2 = optim.SGD(make_params(), lr=0.1)
    opt2.load_state_dict(opt.state_dict())  # the lr itself lives in the optimizer's state, as in PyTorch
    resumed = lr_scheduler.ReduceLROnPlateau(opt2, patience=1)
    resumed.load_state_dict(round_trip(sched.state_dict(), tmp_path))
    for m in [1.0, 1.0, 0.5, 0.6, 0.6]:
        sched.step(m)
        resumed.step(m)
        assert resumed.get_last_lr() == sched.get_last_lr()


def test_linear_warmup_alone_holds_the_base_lr_afterwards():
    opt = optim.SGD(make_params(), lr=0.2)
    assert lrs(optim.LinearWarmup(opt, 4), opt, 6) == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("optimizer, kwargs, read", [
    ("SGD", dict(lr=0.1, momentum=0.9), lambda g: g["momentum"]),
    ("Adam", dict(lr=0.1), lambda g: g["betas"][0]),
])
def test_one_cycle_cycles_momentum_like_torch(optimizer, kwargs, read, three_phase):
    torch = pytest.importorskip("torch")
    p = torch.zeros(2, requires_grad=True)
    ref = getattr(torch.optim, optimizer)([p], **kwargs)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=1.0, total_steps=10, three_phase=three_phase)
    opt = getattr(optim, optimizer)(make_params(), **kwargs)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=10, three_phase=three_phase)
    for _ in range(10):
        assert read(opt.param_groups[0]) == read(ref.param_groups[0])
        ref.step(), ref_sched.step(), opt.step(), sched.step()


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = optim.SGD(make_params(), lr=0.1)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=3, cycle_momentum=False)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        sched.step()


def test_one_cycle_needs_momentum_to_cycle_it():
    with pytest.raises(ValueError, match="cycle_momentum"):
        optim.OneCycleLR(optim.Adagrad(make_params()), max_lr=1.0, total_steps=5)


RESUMABLE = [
    lambda o: optim.StepLR(o, step_size=2, gamma=0.3),
    lambda o: optim.CosineAnnealingLR(o, T_max=6),
    lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=12),
    lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=12, three_phase=True),
    lambda o: optim.LinearWarmup(o, 3, after=optim.StepLR(o, step_size=2)),
    lambda o: optim.LinearWarmup(o, 3, after=optim.CosineAnnealingLR(o, T_max=5)),
    lambda o: lr_scheduler.MultiStepLR(o, [2, 5]),
    lambda o: lr_scheduler.LinearLR(o, total_iters=4),
    lambda o: lr_scheduler.LambdaLR(o, lambda e: 0.9 ** e),
    lambda o: lr_scheduler.ExponentialLR(o, 0.8),
]


@pytest.mark.parametrize("make", RESUMABLE)
def test_scheduler_state_dict_resumes_the_same_sequence_bit_for_bit(make, tmp_path):
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched = make(opt)
    lrs(sched, opt, 5)
    state, opt_state = round_trip({"s": sched.state_dict(), "o": opt.state_dict()}, tmp_path).values()
    expected = lrs(sched, opt, 6)

    opt2 = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert lrs(sched2, opt2, 6) == expected


def former_state(state):
    """A scheduler's state as state_dict gave it before it held every attribute, as PyTorch's does."""
    former = {"last_epoch": state["last_epoch"], "base_lrs": state["base_lrs"]}
    return {**former, "after": former_state(state["after"])} if "after" in state else former


@pytest.mark.parametrize("make", RESUMABLE)
def test_a_scheduler_state_in_the_former_layout_resumes_the_same_sequence(make):
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched = make(opt)
    lrs(sched, opt, 5)
    state, opt_state = former_state(sched.state_dict()), old_optimizer_layout(opt.state_dict())
    expected = lrs(sched, opt, 6)

    opt2 = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == [opt2.param_groups[0]["lr"]]
    assert lrs(sched2, opt2, 6) == pytest.approx(expected, rel=1e-14)


def test_a_scheduler_refuses_the_state_of_another():
    opt = optim.SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="unexpected key"):
        optim.StepLR(opt, 2).load_state_dict(optim.CosineAnnealingLR(opt, 5).state_dict())


def test_zero_grad_without_set_to_none_zeroes_the_grad_tensors_in_place():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    params[0].grad = Tensor(np.ones_like(params[0].array))
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.numpy().any() and params[1].grad is None
