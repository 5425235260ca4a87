"""The residual network's blocks: what their skips carry, and the shapes the network's table promises.

Its gradients and training steps are checked against its PyTorch twin in test_torch_twin.py.
"""
import numpy as np
import pytest

from tinygrad_mnist import Tensor, no_grad
from tinygrad_mnist.models import build_model
from tinygrad_mnist.models.resnet import PreActBlock


def images(n=3, channels=1, size=28):
    return Tensor(np.random.default_rng(0).standard_normal((n, channels, size, size)).astype(np.float32))


def test_a_block_whose_last_convolution_is_zero_returns_its_input_unchanged():
    block = PreActBlock(8, 8)
    block.conv2.weight.array[...] = 0
    x = images(channels=8, size=7)
    with no_grad():
        np.testing.assert_array_equal(block(x).numpy(), x.numpy())


def test_a_block_that_changes_the_shape_halves_the_image_and_projects_its_skip_with_a_strided_1x1_conv():
    block = PreActBlock(8, 16, stride=2)
    assert block.shortcut.kernel_size == (1, 1) and block.shortcut.stride == (2, 2)
    block.conv2.weight.array[...] = 0
    x = images(channels=8, size=14)
    with no_grad():
        out = block(x)
        np.testing.assert_array_equal(out.numpy(), block.shortcut(block.bn1(x).relu()).numpy())
    assert out.shape == (3, 16, 7, 7)


def test_a_block_that_keeps_the_shape_has_an_identity_skip():
    assert PreActBlock(8, 8).shortcut is None
    assert PreActBlock(8, 16).shortcut is not None


@pytest.mark.parametrize("name, w", [("resnet", 16), ("resnet_wide", 24), ("resnet_2x", 32)])
def test_resnet_has_the_shapes_of_its_table_at_its_width_and_ends_in_ten_logits(name, w):
    model = build_model(name)
    x = images()
    with no_grad():
        for layer, shape in (("stem", (w, 28, 28)), ("block1", (2 * w, 14, 14)), ("block2", (4 * w, 7, 7)),
                             ("block3", (4 * w, 7, 7))):
            x = getattr(model, layer)(x)
            assert x.shape[1:] == shape, layer
        assert model(images()).shape == (3, 10)
    assert model.fc.in_features == 4 * w and model.block1.shortcut.out_channels == 2 * w


def test_a_resnet_width_that_is_not_a_positive_integer_is_refused():
    for width in (0, -16, 1.5, True, "16"):
        with pytest.raises(ValueError, match="width must be a positive integer"):
            build_model("resnet", width=width)
