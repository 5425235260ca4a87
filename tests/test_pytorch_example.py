"""PyTorch's MNIST example (pytorch/examples, mnist/main.py): its data lines (torchvision's datasets and
transforms), Net, train() and test() as a PyTorch user writes them, with only the imports changed, run for a
few batches on the small IDX digits.

The example's code is the one in scripts/pytorch_example.py (`Net`, `train`, `test` and the data lines of
`example_datasets` are PyTorch code, under the engine's imports there).
"""
import importlib.util
import io
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import tinygrad_mnist as torch
from tinygrad_mnist import optim, vision
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


def run_example(root, train_batches):
    """main() of the example: its data lines with `root` for '../data', Adadelta(lr=1.0) and StepLR(step_size=1,
    gamma=0.7) for one short epoch; returns what it printed."""
    torch.manual_seed(1)
    device = torch.device("cpu")
    dataset1, dataset2 = example.example_datasets(root, example.datasets, example.transforms)
    dataset1.data, dataset1.targets = dataset1.data[:64 * train_batches], dataset1.targets[:64 * train_batches]
    train_loader = torch.utils.data.DataLoader(dataset1, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(dataset2, batch_size=1000)
    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    out = io.StringIO()
    with redirect_stdout(out):
        train(Args, model, device, train_loader, optimizer, 1)
        test(model, device, test_loader)
        scheduler.step()
    return out.getvalue(), optimizer


def test_pytorchs_mnist_example_runs_with_its_imports_changed(mnist_root):
    assert example.torch is torch and example.nn is torch.nn  # the script's code, on the engine
    assert example.datasets is vision.datasets and example.transforms is vision.transforms
    printed, optimizer = run_example(mnist_root, train_batches=4)
    losses = [float(v) for v in re.findall(r"Loss: ([0-9.]+)", printed)]
    assert len(losses) == 4 and re.search(r"Train Epoch: 1 \[192/256 \(75%\)\]", printed)
    assert losses[-1] < losses[0]
    accuracy = re.search(r"Accuracy: (\d+)/200 \((\d+)%\)", printed)
    assert accuracy, printed
    assert int(accuracy.group(1)) > 40  # 20 is chance: four batches already learn something
    assert optimizer.param_groups[0]["lr"] == 0.7


def test_the_script_runs_the_example_on_both_frameworks_side_by_side(mnist_root, tmp_path):
    """One batch of training and the test set on each framework, torch's in a process of its own (its data lines
    on torchvision where that is installed, else on the engine's arrays): both print their accuracy."""
    if subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode:
        frameworks = ["tinygrad_mnist"]
    else:
        frameworks = ["tinygrad_mnist", "torch"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--root", str(mnist_root)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("framework")[-1].splitlines()[1:]  # the table after its header: name, epoch, accuracy...
    assert [row.split()[:2] for row in table] == [[name, "1"] for name in frameworks], done.stdout
    assert all(row.split()[2].endswith("%") for row in table)
