"""A small residual network: a stem convolution, pre-activation residual blocks, global average pooling.

The blocks are pre-activation (He et al., "Identity Mappings in Deep Residual Networks", 2016): each
computes x + conv(relu(bn(conv(relu(bn(x)))))), so the identity path from the stem to the head carries
nothing but additions. Where a block halves the image and widens the channels, its skip is a 1×1
convolution with that stride, applied (as in the paper) to relu(bn(x)), which is already normalised,
so the projection needs no batch norm of its own.
"""
from tinygrad_mnist import nn


class PreActBlock(nn.Module):
    """BN ReLU Conv(3×3, stride) BN ReLU Conv(3×3), plus the skip: identity, or a strided 1×1
    projection when the stride or the channel count changes."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if changes_shape else None

    def forward(self, x):
        a = self.bn1(x).relu()
        skip = x if self.shortcut is None else self.shortcut(a)
        return skip + self.conv2(self.bn2(self.conv1(a)).relu())


class ResNet(nn.Module):
    """Conv(1→16, 3×3) · block 16→32 /2 · block 32→64 /2 · block 64 · BN ReLU · global average pool ·
    Linear(64→10): eight layers, the blocks' 3×3 convolutions on 14×14 and 7×7 images.

    `width` is the stem's channel count (16); the blocks keep their ratios to it (2×, 4×, 4×)."""

    def __init__(self, width=16):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"ResNet: width must be a positive integer, got {width!r}")
        w = width
        self.stem = nn.Conv2d(1, w, 3, padding=1, bias=False)
        self.block1 = PreActBlock(w, 2 * w, stride=2)
        self.block2 = PreActBlock(2 * w, 4 * w, stride=2)
        self.block3 = PreActBlock(4 * w, 4 * w)
        self.bn = nn.BatchNorm2d(4 * w)
        self.fc = nn.Linear(4 * w, 10)

    def forward(self, x):
        x = self.stem(x)                            # w × 28 × 28 (w = width, 16 in resnet)
        x = self.block1(x)                          # 2w × 14 × 14, projected skip
        x = self.block2(x)                          # 4w × 7 × 7, projected skip
        x = self.block3(x)                          # 4w × 7 × 7, identity skip
        x = self.bn(x).relu().mean(axis=(2, 3))     # 4w: global average pooling
        return self.fc(x)
