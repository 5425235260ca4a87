"""Short checks on the real MNIST files; they run where the files are found (CI points at them)."""
import json
import os
from pathlib import Path

import pytest

from tinygrad_mnist import cli, data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def mnist_dir():
    for folder in (os.environ.get("TINYGRAD_MNIST_DATA"), SHARED):
        if folder and all((Path(folder) / name).is_file() for name in data.FILES):
            return Path(folder)
    return None


pytestmark = pytest.mark.skipif(mnist_dir() is None, reason="real MNIST not found (set TINYGRAD_MNIST_DATA)")


def test_two_epochs_of_the_mlp_on_real_mnist_reach_95_percent(tmp_path):
    run = tmp_path / "mlp"
    assert cli.main(["train", "--model", "mlp_v2", "--epochs", "2", "--data-dir", str(mnist_dir()),
                     "--out", str(run), "--no-progress", "--no-plots"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["test_accuracy"] >= 0.95
    assert sum(sum(row) for row in results["confusion_matrix"]) == 10000
