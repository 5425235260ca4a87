"""PyTorch's MNIST example (pytorch/examples, mnist/main.py): its Net, train() and test() as a PyTorch
user writes them, with only the imports changed, run for a few batches on the small IDX digits.

The example's code is the one in scripts/pytorch_example.py (everything from `class Net` to the end of
`test` is PyTorch code, under the engine's imports there); the data lines build the loaders from the
project's TensorDataset / DataLoader / MNIST instead of torchvision.
"""
import importlib.util
import io
import os
import re
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import tinygrad_mnist as torch
from tinygrad_mnist import optim
from tinygrad_mnist.utils.data import MNIST, DataLoader
from tinygrad_mnist.optim.lr_scheduler import StepLR

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pytorch_example.py"


def load_example():
    """The script as a module, on the engine (its import block picks the framework when it is loaded)."""
    spec = importlib.util.spec_from_file_location("pytorch_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {"PYTORCH_EXAMPLE_FRAMEWORK": "tinygrad_mnist"}):
        spec.loader.exec_module(module)
    return module


example = load_example()
Net, train, test = example.Net, example.train, example.test
test.__test__ = False  # the example's name for its evaluation loop, not a pytest test


class Args:
    log_interval, dry_run = 1, False


def run_example(folder, train_batches):
    """main() of the example, its data lines aside: Adadelta(lr=1.0) and StepLR(step_size=1, gamma=0.7)
    for one short epoch; returns what it printed."""
    torch.manual_seed(1)
    device = torch.device("cpu")
    train_set, test_set = MNIST(folder, train=True), MNIST(folder, train=False)
    train_set.tensors = tuple(t[:64 * train_batches] for t in train_set.tensors)  # a few batches only
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)
    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    out = io.StringIO()
    with redirect_stdout(out):
        train(Args, model, device, train_loader, optimizer, 1)
        test(model, device, test_loader)
        scheduler.step()
    return out.getvalue(), optimizer


def test_pytorchs_mnist_example_runs_with_its_imports_changed(dataset):
    assert example.torch is torch and example.nn is torch.nn  # the script's code, on the engine
    printed, optimizer = run_example(dataset, train_batches=4)
    losses = [float(v) for v in re.findall(r"Loss: ([0-9.]+)", printed)]
    assert len(losses) == 4 and re.search(r"Train Epoch: 1 \[192/256 \(75%\)\]", printed)
    assert losses[-1] < losses[0]
    accuracy = re.search(r"Accuracy: (\d+)/200 \((\d+)%\)", printed)
    assert accuracy, printed
    assert int(accuracy.group(1)) > 40  # 20 is chance: four batches already learn something
    assert optimizer.param_groups[0]["lr"] == 0.7
