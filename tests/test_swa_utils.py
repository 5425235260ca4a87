"""optim.swa_utils: the moving averages of weights that --ema trains with, against torch.optim.swa_utils."""
import numpy as np
import pytest

from tinygrad_mnist import Tensor, nn, optim
from tinygrad_mnist import functional as F
from tinygrad_mnist.optim.swa_utils import AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().flatten(1))


def torch_small(torch, ours):
    class TorchSmall(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 3, 3)
            self.bn = torch.nn.BatchNorm2d(3)
            self.fc = torch.nn.Linear(3 * 4 * 4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))
    model = TorchSmall().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return model


def train_both(torch, make_ours, make_theirs, steps=25):
    """Train the same model in both frameworks with SGD, folding every step into each average."""
    rng = np.random.default_rng(0)
    ours = Small().to(np.float64)
    theirs = torch_small(torch, ours)
    avg_ours, avg_theirs = make_ours(ours), make_theirs(theirs)
    opt_ours = optim.SGD(list(ours.parameters()), lr=0.1, momentum=0.9)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x, y = rng.standard_normal((8, 1, 6, 6)), rng.integers(0, 4, 8)
        opt_ours.zero_grad()
        F.cross_entropy(ours(Tensor(x)), y).backward()
        opt_ours.step()
        avg_ours.update_parameters(ours)
        opt_theirs.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt_theirs.step()
        avg_theirs.update_parameters(theirs)
    return avg_ours, avg_theirs


def assert_same_state(ours, theirs):
    mine = ours.state_dict()
    assert list(mine) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # torch truncates an average of the counter (see the module's docstring)
        np.testing.assert_allclose(mine[key], value.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=key)


def test_ema_with_buffers_matches_torch_over_25_steps():
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils
    ours, theirs = train_both(
        torch, lambda m: AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True),
        lambda m: swa_utils.AveragedModel(m, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.9), use_buffers=True))
    assert_same_state(ours, theirs)


def test_ema_per_tensor_avg_fn_matches_torch_and_buffers_follow_the_model():
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils
    ours, theirs = train_both(torch, lambda m: AveragedModel(m, avg_fn=get_ema_avg_fn(0.8)),
                              lambda m: swa_utils.AveragedModel(m, avg_fn=swa_utils.get_ema_avg_fn(0.8)))
    assert_same_state(ours, theirs)


def test_swa_mean_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils
    ours, theirs = train_both(torch, lambda m: AveragedModel(m, use_buffers=True),
                              lambda m: swa_utils.AveragedModel(m, use_buffers=True))
    assert_same_state(ours, theirs)
    assert int(ours.n_averaged.item()) == 25


def test_ema_is_the_closed_form_weighted_sum_of_the_values_it_saw():
    model = nn.Linear(2, 1)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    values = [1.0, 3.0, -2.0]
    for v in values:
        model.weight.array[...] = v
        ema.update_parameters(model)
    # the first value is copied, each later one moves the average half way towards it
    np.testing.assert_allclose(ema.module.weight.numpy(), np.full((1, 2), ((1.0 + 3.0) / 2 - 2.0) / 2), rtol=1e-6)


def test_the_average_is_a_separate_copy_that_the_optimizer_never_touches():
    model = nn.Linear(3, 2)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    before = ema.state_dict()
    model.weight.array += 1
    assert all(np.array_equal(v, before[k]) for k, v in ema.state_dict().items())
    assert all(p.grad is None for p in ema.module.parameters())
    x = Tensor(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(ema(x).numpy(), ema.module(x).numpy())


def test_state_dict_round_trip_continues_the_average_bit_for_bit():
    model = Small()
    make = lambda: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    a = make()
    for _ in range(3):
        model.fc.weight.array *= 0.5
        a.update_parameters(model)
    b = make()
    b.load_state_dict(a.state_dict())
    model.fc.weight.array += 1
    for ema in (a, b):
        ema.update_parameters(model)
    assert list(a.state_dict()) == ["n_averaged", *["module." + k for k in model.state_dict()]]
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)


@pytest.mark.parametrize("make, message", [
    (lambda: get_ema_multi_avg_fn(1.5), "EMA decay must be in"),
    (lambda: AveragedModel(nn.Linear(1, 1), avg_fn=get_ema_avg_fn(), multi_avg_fn=get_ema_multi_avg_fn()),
     "not both"),
    (lambda: AveragedModel(nn.Linear(2, 1)).update_parameters(nn.Linear(3, 1)), "do not match"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
