"""PyTorch's MNIST example (pytorch/examples, mnist/main.py) on the engine: its Net, train() and test()
and its data lines (torchvision's datasets and transforms) as PyTorch code, with only the imports changed.
One epoch on MNIST, then, when torch is installed, the same code on torch in a process of its own: test
accuracy and time of both, side by side.

    python scripts/pytorch_example.py                     # both frameworks, one epoch each
    python scripts/pytorch_example.py --framework tinygrad_mnist --epochs 3
    python scripts/pytorch_example.py --root ../data      # the example's own root, downloaded if need be

The example's root is '../data' (files in ../data/MNIST/raw); without --root the engine uses the MNIST files
it finds (TINYGRAD_MNIST_DATA, its cache). torch's side runs the same data lines on torchvision where
torchvision is installed and --root is given; otherwise it gets the engine's transformed arrays through
TensorDataset, the same values.
"""
import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time

FRAMEWORK = os.environ.get("PYTORCH_EXAMPLE_FRAMEWORK", "tinygrad_mnist")
if FRAMEWORK == "torch":
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader, TensorDataset
    try:
        from torchvision import datasets, transforms
    except ImportError:
        datasets = transforms = None
else:
    import tinygrad_mnist as torch
    import tinygrad_mnist.functional as F
    from tinygrad_mnist import nn, optim
    from tinygrad_mnist.utils.data import DataLoader, TensorDataset
    from tinygrad_mnist.optim.lr_scheduler import StepLR
    from tinygrad_mnist.vision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))


class Tee(io.TextIOBase):
    """Print through, and keep a copy to read the example's accuracy from."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text):
        self.copy.write(text)
        return self.stream.write(text)


def example_datasets(root, datasets, transforms):
    """The example's data lines, its '../data' being `root`, on torchvision's or the engine's datasets and
    transforms."""
    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,))
        ])
    dataset1 = datasets.MNIST(root, train=True, download=True,
                              transform=transform)
    dataset2 = datasets.MNIST(root, train=False,
                              transform=transform)
    return dataset1, dataset2


def engine_tensors_for_torch(root):
    """For torch without torchvision (or without a root): the engine's datasets of the same data lines, each
    as one batch, in TensorDatasets of torch tensors."""
    import tinygrad_mnist.utils.data
    import tinygrad_mnist.vision
    found = []
    for dataset in example_datasets(root, tinygrad_mnist.vision.datasets, tinygrad_mnist.vision.transforms):
        images, labels = next(iter(tinygrad_mnist.utils.data.DataLoader(dataset, batch_size=len(dataset))))
        found.append(TensorDataset(torch.tensor(images.numpy()), torch.tensor(labels.numpy())))
    return found


def run(args):
    """main() of the example; returns accuracy and seconds per epoch."""
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    if datasets is not None and (FRAMEWORK != "torch" or args.root is not None):
        dataset1, dataset2 = example_datasets(args.root, datasets, transforms)
    else:
        dataset1, dataset2 = engine_tensors_for_torch(args.root)
    train_loader = DataLoader(dataset1, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(dataset2, batch_size=args.test_batch_size)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train(args, model, device, train_loader, optimizer, epoch)
        trained = time.perf_counter()
        tee = Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            test(model, device, test_loader)
        correct = int(re.search(r"Accuracy: (\d+)/", tee.copy.getvalue()).group(1))
        epochs.append({"epoch": epoch, "accuracy": correct / len(dataset2), "train_s": trained - start,
                       "test_s": time.perf_counter() - trained})
        scheduler.step()
    return epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["both", "tinygrad_mnist", "torch"], default="both")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=100)
    parser.add_argument("--dry-run", action="store_true", help="one batch per epoch")
    parser.add_argument("--root", default=None, help="torchvision's root: the MNIST files in ROOT/MNIST/raw, "
                        "downloaded there if missing (default: the files the engine finds, or downloads to its cache)")
    parser.add_argument("--result", help=argparse.SUPPRESS)  # where a worker process writes its figures
    args = parser.parse_args()
    if args.result:
        with open(args.result, "w") as f:
            json.dump(run(args), f)
        return
    frameworks = ["tinygrad_mnist", "torch"] if args.framework == "both" else [args.framework]
    if args.framework == "both" and subprocess.run([sys.executable, "-c", "import torch"],
                                                   capture_output=True).returncode:
        print("torch is not installed: running tinygrad_mnist alone (pip install torch to compare)")
        frameworks = ["tinygrad_mnist"]
    results = {}
    for name in frameworks:
        print(f"== {name} ==", flush=True)
        path = f".pytorch_example_{name}.json"
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--result", path], check=True,
                       env={**os.environ, "PYTORCH_EXAMPLE_FRAMEWORK": name})
        with open(path) as f:
            results[name] = json.load(f)
        os.remove(path)
    print(f"{'framework':<16}{'epoch':>6}{'test accuracy':>15}{'train s':>10}{'test s':>9}")
    for name, epochs in results.items():
        for e in epochs:
            print(f"{name:<16}{e['epoch']:>6}{e['accuracy']:>15.2%}{e['train_s']:>10.1f}{e['test_s']:>9.1f}")


if __name__ == "__main__":
    main()
