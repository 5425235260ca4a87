import math

import numpy as np
import pytest

from tinygrad_mnist import Tensor, nn, optim
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


def flatten(tree, prefix=""):
    """A nested dict of str keys as flat "a/b/c" keys, the way a checkpoint stores it in an .npz."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = np.asarray(value)
    return out


def unflatten(flat):
    tree = {}
    for key, value in flat.items():
        *path, leaf = key.split("/")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_state_dict_round_trip_through_npz_continues_identically(name, kwargs, tmp_path):
    params = make_params()
    opt = getattr(optim, name)(params, **kwargs)
    run(opt, params, 5)
    np.savez(tmp_path / "opt.npz", **flatten(opt.state_dict()))
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as saved:
        state = unflatten(dict(saved))

    resumed = [nn.Parameter(p.numpy().copy()) for p in params]
    fresh = getattr(optim, name)(resumed, lr=1.0) if name == "SGD" else getattr(optim, name)(resumed)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0].keys() == opt.param_groups[0].keys()
    run(opt, params, 5)
    run(fresh, resumed, 5)
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_state_dict_holds_only_str_keys_arrays_and_numbers():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 2)
    state = opt.state_dict()
    assert state["param_groups"]["0"]["betas"] == [0.9, 0.999]
    assert state["param_groups"]["0"]["params"] == [0, 1]
    assert state["state"]["1"]["step"] == 2 and isinstance(state["state"]["1"]["exp_avg"], np.ndarray)
    state["state"]["1"]["exp_avg"] += 1  # a copy, not the optimizer's own array
    assert not np.array_equal(opt.state[params[1]]["exp_avg"], state["state"]["1"]["exp_avg"])


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
    assert list(opt.state_dict()["state"]) == ["0"]


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


SCHEDULES = {
    "StepLR": (lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), 12),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[7, 2, 7, 15], gamma=0.5), 20),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.9), 20),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=8), 20),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lambda epoch: 1 / (1 + epoch) ** 0.5), 20),
    "OneCycleLR-epochs": (lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=5), 20),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01), 20),
    "OneCycleLR-cos": (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=20), 20),
    "OneCycleLR-linear": (lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=17, pct_start=0.25,
                                                    anneal_strategy="linear", div_factor=10.0), 17),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_scheduler_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, steps = SCHEDULES[name]
    expected, _ = torch_lrs(torch, make, steps, lr=0.1, momentum=0.9)
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    np.testing.assert_allclose(lrs(make(lr_scheduler, opt), opt, steps), expected, rtol=1e-12, atol=1e-15)


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


def test_reduce_lr_on_plateau_state_dict_resumes():
    opt = optim.SGD(make_params(), lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for m in [1.0, 1.0, 1.0]:
        sched.step(m)
    opt2 = optim.SGD(make_params(), lr=0.1)
    opt2.load_state_dict(opt.state_dict())  # the lr itself lives in the optimizer's state, as in PyTorch
    resumed = lr_scheduler.ReduceLROnPlateau(opt2, patience=1)
    resumed.load_state_dict(unflatten(flatten(sched.state_dict())))
    for m in [1.0, 1.0, 0.5, 0.6, 0.6]:
        sched.step(m)
        resumed.step(m)
        assert resumed.get_last_lr() == sched.get_last_lr()


def test_linear_warmup_alone_holds_the_base_lr_afterwards():
    opt = optim.SGD(make_params(), lr=0.2)
    assert lrs(optim.LinearWarmup(opt, 4), opt, 6) == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])


@pytest.mark.parametrize("optimizer, kwargs, read", [
    ("SGD", dict(lr=0.1, momentum=0.9), lambda g: g["momentum"]),
    ("Adam", dict(lr=0.1), lambda g: g["betas"][0]),
])
def test_one_cycle_cycles_momentum_like_torch(optimizer, kwargs, read):
    torch = pytest.importorskip("torch")
    p = torch.zeros(2, requires_grad=True)
    ref = getattr(torch.optim, optimizer)([p], **kwargs)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=1.0, total_steps=10)
    opt = getattr(optim, optimizer)(make_params(), **kwargs)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    for _ in range(10):
        assert read(opt.param_groups[0]) == pytest.approx(read(ref.param_groups[0]), rel=1e-12)
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


@pytest.mark.parametrize("make", [
    lambda o: optim.StepLR(o, step_size=2, gamma=0.3),
    lambda o: optim.CosineAnnealingLR(o, T_max=6),
    lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=12),
    lambda o: optim.LinearWarmup(o, 3, after=optim.StepLR(o, step_size=2)),
    lambda o: lr_scheduler.MultiStepLR(o, [2, 5]),
    lambda o: lr_scheduler.LinearLR(o, total_iters=4),
    lambda o: lr_scheduler.LambdaLR(o, lambda e: 0.9 ** e),
])
def test_scheduler_state_dict_resumes_the_same_sequence(make):
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched = make(opt)
    lrs(sched, opt, 5)
    state = unflatten(flatten(sched.state_dict()))  # numbers survive as 0-d arrays, as from an .npz
    opt_state = opt.state_dict()
    expected = lrs(sched, opt, 6)

    opt2 = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert lrs(sched2, opt2, 6) == pytest.approx(expected, rel=1e-15)


def test_zero_grad_without_set_to_none_zeroes_the_grad_tensors_in_place():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    params[0].grad = Tensor(np.ones_like(params[0].array))
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.numpy().any() and params[1].grad is None
