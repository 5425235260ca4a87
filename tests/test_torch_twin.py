"""Every model against its PyTorch twin: the same weights, batches and optimizer give the same losses.

Skipped where PyTorch is not installed (`pip install 'tinygrad_mnist[torch]'`).
"""
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from idx_fixtures import write_dataset
from tinygrad_mnist import torch_twin
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
    result = torch_twin.compare_steps(name, x, y, make_config(name, batch_size=4, device="cpu"), steps=5)
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


def test_the_optimizers_map_with_their_hyper_parameters():
    params = [torch.zeros(2, requires_grad=True)]
    sgd = torch_twin.torch_optimizer(make_config("mlp_64_32"), params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["lr"] == 0.01
    adam = torch_twin.torch_optimizer(make_config("mlp_v2"), params)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["weight_decay"] == 1e-5
    adamw = torch_twin.torch_optimizer(make_config("lenet5", optimizer="adamw"), params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.0


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


def test_without_torch_the_script_prints_the_install_hint_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    monkeypatch.setattr(sys, "argv", ["compare_pytorch.py", "--model", "lenet5"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == torch_twin.INSTALL_HINT + "\n"
