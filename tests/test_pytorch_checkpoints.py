"""PyTorch programs that save, load and copy state dicts, written once and run on both frameworks: the
tutorial "Saving and loading a general checkpoint in PyTorch", and the best-weights-by-validation loop.
They must run unchanged on the engine and end with the weights they end with in PyTorch (float64)."""
import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest

import tinygrad_mnist
import tinygrad_mnist.functional

torch = pytest.importorskip("torch")

OURS = SimpleNamespace(torch=tinygrad_mnist, nn=tinygrad_mnist.nn, F=tinygrad_mnist.functional,
                       optim=tinygrad_mnist.optim)
THEIRS = SimpleNamespace(torch=torch, nn=torch.nn, F=torch.nn.functional, optim=torch.optim)
RNG = np.random.default_rng(0)
BATCHES = [(RNG.standard_normal((4, 3, 32, 32)), RNG.integers(0, 10, 4)) for _ in range(6)]


def tutorial_net(fw):
    """The tutorial's Net, from the PyTorch CIFAR-10 tutorial."""
    nn, F = fw.nn, fw.F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.view(-1, 16 * 5 * 5)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x
    return Net


def train(fw, model, optimizer, batches):
    for x, y in batches:
        optimizer.zero_grad()
        loss = fw.F.cross_entropy(model(fw.torch.tensor(x)), fw.torch.tensor(y))
        loss.backward()
        optimizer.step()
    return loss


def general_checkpoint(fw, path, initial, make_optimizer):
    """The tutorial's steps (define, initialise, save, load), with some training around them."""
    Net, torch = tutorial_net(fw), fw.torch
    net = Net().double()
    net.load_state_dict({k: torch.tensor(v) for k, v in initial.items()})
    optimizer = make_optimizer(fw.optim, net.parameters())
    LOSS = train(fw, net, optimizer, BATCHES[:3]).item()

    # Save the general checkpoint
    EPOCH = 5
    PATH = str(path)
    torch.save({
        'epoch': EPOCH,
        'model_state_dict': net.state_dict(),
        'optimizer_state_dict': optimizer.state_dict(),
        'loss': LOSS,
    }, PATH)

    # Load the general checkpoint
    model = Net().double()
    optimizer = make_optimizer(fw.optim, model.parameters())
    checkpoint = torch.load(PATH, weights_only=True)
    model.load_state_dict(checkpoint['model_state_dict'])
    optimizer.load_state_dict(checkpoint['optimizer_state_dict'])
    epoch = checkpoint['epoch']
    loss = checkpoint['loss']
    assert (epoch, loss) == (EPOCH, LOSS)
    for k in model.state_dict():  # the tutorial prints each name and size
        assert tuple(model.state_dict()[k].size()) == tuple(net.state_dict()[k].size())
    assert checkpoint['optimizer_state_dict']['param_groups'][0]['lr'] == optimizer.param_groups[0]['lr']

    model.train()
    train(fw, model, optimizer, BATCHES[3:])
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make_optimizer", [
    lambda optim, params: optim.SGD(params, lr=0.001, momentum=0.9),  # the tutorial's
    lambda optim, params: optim.Adam(params, lr=1e-3, amsgrad=True),
    lambda optim, params: optim.RMSprop(params, lr=1e-3, momentum=0.5, centered=True),
], ids=["SGD-momentum", "Adam-amsgrad", "RMSprop-centered"])
def test_the_general_checkpoint_tutorial_ends_with_torch_s_weights(tmp_path, make_optimizer):
    initial = {k: v.numpy() for k, v in tutorial_net(OURS)().double().state_dict().items()}
    ours = general_checkpoint(OURS, tmp_path / "ours.pt", initial, make_optimizer)
    theirs = general_checkpoint(THEIRS, tmp_path / "theirs.pt", initial, make_optimizer)
    assert list(ours) == list(theirs)
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


def test_an_optimizer_state_saved_by_torch_save_has_torch_s_layout_after_loading(tmp_path):
    fw = OURS
    model = tutorial_net(fw)().double()
    optimizer = fw.optim.Adam(model.parameters())
    train(fw, model, optimizer, BATCHES[:1])
    fw.torch.save({"optimizer": optimizer.state_dict()}, tmp_path / "c.pt")
    state = fw.torch.load(tmp_path / "c.pt")["optimizer"]
    assert list(state["state"]) == list(range(10)) and isinstance(state["param_groups"], list)
    assert state["param_groups"][0]["betas"] == (0.9, 0.999) and state["param_groups"][0]["params"] == [*range(10)]
    step = state["state"][0]["step"]
    assert isinstance(step, fw.torch.Tensor) and step.dtype == np.float32 and step.item() == 1.0


def small_net(fw):
    nn = fw.nn
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)).double()


def best_weights_by_validation(fw, initial, epochs=8):
    """Train, keep the weights of the epoch with the lowest validation loss in two common ways, and load
    them at the end; returns the final weights, both copies, the last epoch's weights and the best epoch."""
    torch, F = fw.torch, fw.F
    model = small_net(fw)
    model.load_state_dict({k: torch.tensor(v) for k, v in initial.items()})
    optimizer = fw.optim.SGD(model.parameters(), lr=0.9, momentum=0.9)
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.standard_normal((32, 6))), torch.tensor(rng.integers(0, 3, 32))
    x_val, y_val = torch.tensor(rng.standard_normal((32, 6))), torch.tensor(rng.integers(0, 3, 32))
    best_loss, best_epoch = math.inf, None
    for epoch in range(epochs):
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(x_val), y_val).item()
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_model_wts = copy.deepcopy(model.state_dict())
            best = {k: v.clone() for k, v in model.state_dict().items()}
    last = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.load_state_dict(best_model_wts)
    as_numpy = lambda state: {k: v.detach().numpy().copy() for k, v in state.items()}
    return as_numpy(model.state_dict()), as_numpy(best_model_wts), as_numpy(best), last, best_epoch


def test_the_best_weights_loop_keeps_real_copies_and_ends_with_torch_s_weights():
    initial = {k: v.numpy() for k, v in small_net(OURS).state_dict().items()}
    ours, theirs = best_weights_by_validation(OURS, initial), best_weights_by_validation(THEIRS, initial)
    final, deep, cloned, last, epoch = ours
    assert epoch == theirs[-1] and 0 < epoch < 7  # the copies are not of the last epoch's weights
    for name in final:
        np.testing.assert_array_equal(deep[name], final[name], err_msg=name)
        np.testing.assert_array_equal(cloned[name], final[name], err_msg=name)
        np.testing.assert_allclose(final[name], theirs[0][name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert not np.array_equal(final["0.weight"], last["0.weight"])
    assert not np.array_equal(final["1.running_mean"], last["1.running_mean"])
    assert final["1.num_batches_tracked"] == epoch + 1

