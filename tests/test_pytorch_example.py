"""PyTorch's MNIST example (pytorch/examples, mnist/main.py): its Net, train() and test() as a PyTorch
user writes them, with only the imports changed, run for a few batches on the small IDX digits.

Everything from `class Net` to the end of `test` is PyTorch code; the data lines build the loaders
from the project's TensorDataset / DataLoader / MNIST instead of torchvision.
"""
import io
import re
from contextlib import redirect_stdout

import tinygrad_mnist as torch
import tinygrad_mnist.functional as F
from tinygrad_mnist import nn, optim
from tinygrad_mnist.utils.data import MNIST, DataLoader
from tinygrad_mnist.optim.lr_scheduler import StepLR


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
    printed, optimizer = run_example(dataset, train_batches=4)
    losses = [float(v) for v in re.findall(r"Loss: ([0-9.]+)", printed)]
    assert len(losses) == 4 and re.search(r"Train Epoch: 1 \[192/256 \(75%\)\]", printed)
    assert losses[-1] < losses[0]
    accuracy = re.search(r"Accuracy: (\d+)/200 \((\d+)%\)", printed)
    assert accuracy, printed
    assert int(accuracy.group(1)) > 40  # 20 is chance: four batches already learn something
    assert optimizer.param_groups[0]["lr"] == 0.7
