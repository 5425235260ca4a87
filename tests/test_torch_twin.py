"""Every model against its PyTorch twin: the same weights, batches and optimizer give the same losses.

Skipped where PyTorch is not installed (`pip install 'tinygrad_mnist[torch]'`).
"""
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from idx_fixtures import write_dataset
from tinygrad_mnist import Tensor, cli, torch_twin
from tinygrad_mnist.models import MODELS, build_model
from tinygrad_mnist.training import make_config

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_pytorch.py"


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 1, 28, 28)).astype(np.float32), np.arange(8) % 10


@pytest.mark.parametrize("name", sorted(MODELS))
def test_losses_agree_step_by_step_in_float64(name, batch):
    x, y = batch
    # 2 steps an epoch: at least 3 epochs, so that a short recipe (fast_cnn's 2) still takes 5 steps
    config = make_config(name, batch_size=4, device="cpu", epochs=max(3, make_config(name)["epochs"]))
    result = torch_twin.compare_steps(name, x, y, config, steps=5)
    assert len(result.ours) == 5
    assert result.worst_loss <= torch_twin.TOLERANCE
    assert result.worst_state <= 1e-9


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_twin_starts_from_the_same_weights_and_buffers(name):
    model = build_model(name)
    twin = torch_twin.torch_model(name, model)
    theirs = twin.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[key].numpy(), value, err_msg=key)


def test_the_script_prints_the_table_on_a_tiny_dataset(tmp_path, monkeypatch, capsys):
    write_dataset(tmp_path, n_train=40, n_test=20)
    monkeypatch.setattr(sys, "argv", ["compare_pytorch.py", "--model", "mlp_64_32", "--data-dir", str(tmp_path),
                                      "--val-size", "0", "--epochs", "1", "--batch-size", "10", "--steps", "3"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "3 steps" in out and "PASS" in out
    assert "macro F1" in out and "tinygrad_mnist" in out and f"torch {torch.__version__}" in out


def test_without_torch_compare_prints_the_install_hint_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert cli.main(["compare", "--model", "lenet5"]) == 2
    assert capsys.readouterr().err == f"tinygrad-mnist compare: error: {torch_twin.INSTALL_HINT}\n"



@pytest.mark.parametrize("width", [2, 4])
def test_the_lenet5_twin_follows_its_width_and_computes_the_same_logits(width, batch):
    torch = pytest.importorskip("torch")
    model = build_model("lenet5", width=width)
    assert (model.conv1.out_channels, model.conv2.out_channels) == (6 * width, 16 * width)
    twin = torch_twin.torch_model("lenet5", model)
    x = batch[0]
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(Tensor(x)).numpy(), theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("width", [0, -2, 1.5, True, "2"])
def test_a_lenet5_width_that_is_not_a_positive_integer_is_refused(width):
    with pytest.raises(ValueError, match="width must be a positive integer"):
        build_model("lenet5", width=width)


@pytest.mark.parametrize("channels", [(0, 16), (8,), (8, 16, 32), (True, 16), (8, 16.0), "816"])
def test_cnn_bn_channels_that_are_not_two_positive_integers_are_refused(channels):
    with pytest.raises(ValueError, match="channels must be two positive integers"):
        build_model("cnn_bn", channels=channels)
