"""The convolutional networks: LeNet-5, the two small CNNs of the projects, our best model, the nets
that reach 99% and 99.5% soonest, and the net of PyTorch's own MNIST example.

Each block that pools ends in max-pool then ReLU, which is the same function as ReLU then max-pool,
with the same gradients (ReLU is monotone, and both orders give 0 to every pixel of a window whose
maximum is ≤ 0), but the ReLU then runs on a quarter of the pixels.
"""
import tinygrad_mnist.functional as F
from tinygrad_mnist import nn


class LeNet5(nn.Module):
    """Conv(1→6, 5) MaxPool2 ReLU · Conv(6→16, 5) MaxPool2 ReLU · 256-120-84-10.

    `width` multiplies the channels of both convolutions (6w and 16w; the fully connected layers keep
    120 and 84 units): the benchmark's scaling table grows the convolutions' work with it."""

    def __init__(self, width=1):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:  # True is an int to Python
            raise ValueError(f"LeNet5: width must be a positive integer, got {width!r}")
        self.conv1 = nn.Conv2d(1, 6 * width, 5)
        self.conv2 = nn.Conv2d(6 * width, 16 * width, 5)
        self.fc1 = nn.Linear(16 * width * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2).relu()   # 6w × 12 × 12
        x = F.max_pool2d(self.conv2(x), 2).relu()   # 16w × 4 × 4
        x = x.flatten(1)
        x = self.fc1(x).relu()
        x = self.fc2(x).relu()
        return self.fc3(x)


class CNNBN(nn.Module):
    """Conv(1→16, 5) BN MaxPool2 ReLU · Conv(16→32, 5) BN MaxPool2 ReLU · Linear(512→10).

    `channels` sets the two convolutions' widths (c1, c2): fast_cnn is this net at (8, 16), a third
    of the work."""

    def __init__(self, channels=(16, 32)):
        super().__init__()
        if not (isinstance(channels, (tuple, list)) and len(channels) == 2
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels)):
            raise ValueError(f"CNNBN: channels must be two positive integers (c1, c2), got {channels!r}")
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 5, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 5, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(self.bn1(self.conv1(x)), 2).relu()   # c1 × 12 × 12
        x = F.max_pool2d(self.bn2(self.conv2(x)), 2).relu()   # c2 × 4 × 4
        return self.fc(x.flatten(1))


class SprintCNN(nn.Module):
    """Conv(1→12, 5, stride 2) BN ReLU · Conv(12→24, 3) MaxPool2 BN ReLU · 600-256-10: the net that
    reaches 99% test accuracy soonest on a CPU, in one epoch.

    The first convolution strides 2 instead of being pooled: it computes one pixel of each 2×2 window of
    its 24 × 24 output (where the pooling took the largest of the four), a quarter of the work, and no
    pooling runs at full size. Its one-epoch recipe took 11.1 s against 15.2 s from process start with
    the convolution at stride 1 and pooled (seeds 0-2, one after the other, 2 threads), and ended as
    accurate (99.11-99.22% on seeds 0-4 against 99.15-99.34%). The second block pools before its
    batch norm, so that the normalisation runs on a quarter of the pixels; the second convolution is
    3×3, so 5×5 pixels are left after it."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 5, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 24, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(24)
        self.fc1 = nn.Linear(24 * 5 * 5, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu()                    # 12 × 12 × 12
        x = self.bn2(F.max_pool2d(self.conv2(x), 2)).relu()   # 24 × 5 × 5
        return self.fc2(self.fc1(x.flatten(1)).relu())


class Sprint995CNN(nn.Module):
    """Conv(1→16, 5) MaxPool2 BN ReLU · Conv(16→48, 3) MaxPool2 BN ReLU · Conv(48→64, 3) BN ReLU ·
    576-256-10: the net that reaches 99.5% test accuracy soonest on a CPU, in three epochs with
    augmentation.

    The third convolution runs on the 5 × 5 map that the second block leaves, so it adds depth for 7%
    more multiply-adds (1.32 against 1.23 million an image; the head then takes 576 inputs instead of
    1200): without it (48 channels feeding the 1200-256 head) three epochs ended at
    99.50-99.53%, four at 99.52-99.54%; with it, 99.55-99.58% on seeds 0-4 (1 thread each). The first
    convolution is pooled rather than strided as in sprint_cnn: at this width strided (24 channels)
    ended at 99.48% and 99.52% on seeds 0 and 1."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 48, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(48)
        self.conv3 = nn.Conv2d(48, 64, 3, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 3 * 3, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.bn1(F.max_pool2d(self.conv1(x), 2)).relu()   # 16 × 12 × 12
        x = self.bn2(F.max_pool2d(self.conv2(x), 2)).relu()   # 48 × 5 × 5
        x = self.bn3(self.conv3(x)).relu()                    # 64 × 3 × 3
        return self.fc2(self.fc1(x.flatten(1)).relu())


class SimpleCNN(nn.Module):
    """Conv(1→16, 3, pad 1) MaxPool2 ReLU · Conv(16→32, 3, pad 1) MaxPool2 ReLU · 1568-100-10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2).relu()   # 16 × 14 × 14
        x = F.max_pool2d(self.conv2(x), 2).relu()   # 32 × 7 × 7
        x = self.fc1(x.flatten(1)).relu()
        return self.fc2(x)


class Best(nn.Module):
    """Two blocks of two 3×3 convolutions with BN (32, then 64 channels), each ending in MaxPool2,
    then 3136-128-10 with dropout; trained with augmentation and a one-cycle schedule."""

    def __init__(self, dropout=0.3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 7 * 7, 128, bias=False)
        self.bn5 = nn.BatchNorm1d(128)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu()
        x = F.max_pool2d(self.bn2(self.conv2(x)), 2).relu()   # 32 × 14 × 14
        x = self.bn3(self.conv3(x)).relu()
        x = F.max_pool2d(self.bn4(self.conv4(x)), 2).relu()   # 64 × 7 × 7
        x = self.drop(self.bn5(self.fc1(x.flatten(1))).relu())
        return self.fc2(x)


class PyTorchExample(nn.Module):
    """The net of PyTorch's MNIST example (pytorch/examples, mnist/main.py): Conv(1→32, 3) ReLU ·
    Conv(32→64, 3) ReLU · MaxPool2 · Dropout 0.25 · 9216-128 ReLU · Dropout 0.5 · 128-10 · log-softmax.

    The convolutions run on 26×26 and 24×24 images with no pooling between them: the widest layers
    of any model here. The output is log-probabilities, as in the example; the training loss
    (cross-entropy, a log-softmax and then the negative log-likelihood) leaves them unchanged,
    since log_softmax(log_softmax(z)) = log_softmax(z), so it is the example's nll_loss exactly.
    Its two dropout rates are the example's: `--dropout` has no single rate to set here."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x).relu()                    # 32 × 26 × 26
        x = self.conv2(x).relu()                    # 64 × 24 × 24
        x = self.dropout1(F.max_pool2d(x, 2))       # 64 × 12 × 12
        x = self.dropout2(self.fc1(x.flatten(1)).relu())
        return F.log_softmax(self.fc2(x), dim=1)
