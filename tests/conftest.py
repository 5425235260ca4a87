import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Test helpers (small IDX datasets, fake runs) are plain modules beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

from idx_fixtures import draw_glyphs, write_dataset  # noqa: E402

# No test asserts on time, and hypothesis's per-example deadline would be such an assertion (a first
# call into PyTorch or a loaded CI machine can take longer than it): it is off everywhere.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A folder of four small IDX files (600 training and 200 test images of drawn bars, one angle per
    class), for the tests that train end to end."""
    folder = tmp_path_factory.mktemp("digits")
    write_dataset(folder, n_train=600, n_test=200)
    return folder


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    """torchvision's root for MNIST: the small IDX files of `dataset` (the same drawn bars), in root/MNIST/raw."""
    root = tmp_path_factory.mktemp("torchvision-root")
    write_dataset(root / "MNIST" / "raw", n_train=600, n_test=200)
    return root


@pytest.fixture(scope="session")
def glyph_run(tmp_path_factory):
    """A LeNet-5 run trained on drawn glyphs (idx_fixtures.draw_glyphs: a ring is 0, an upright bar 1),
    so that a loop or a stroke drawn by a test has one right answer out of ten."""
    from tinygrad_mnist import cli

    data = tmp_path_factory.mktemp("glyphs")
    write_dataset(data, n_train=1000, n_test=200, draw=draw_glyphs)
    run = tmp_path_factory.mktemp("runs") / "lenet5"
    assert cli.main(["train", "--model", "lenet5", "--data-dir", str(data), "--out", str(run), "--epochs", "3",
                     "--batch-size", "32", "--val-size", "100", "--seed", "0", "--no-progress", "--no-plots"]) == 0
    return run
