"""Training end to end through the command line, on a small synthetic IDX dataset."""
import csv
import json
import os
import signal
import sys

import numpy as np
import pytest

from tinygrad_mnist import cli, data, nn, optim
from tinygrad_mnist.loop import augmentation, make_optimizer
from tinygrad_mnist.checkpoint import load_checkpoint, save_checkpoint
from tinygrad_mnist.models import MODELS
from tinygrad_mnist.training import Trainer, TrainingInterrupted, make_config

from idx_fixtures import make_split
from old_formats import old_optimizer_layout, save_as_format_1
from run_fixtures import make_fake_run


def train(dataset, out, *extra):
    argv = ["train", "--data-dir", str(dataset), "--out", str(out), "--val-size", "100", "--no-progress",
            "--no-plots", *extra]
    return cli.main(argv)


def read_metrics(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_training_lenet5_through_the_cli_lowers_the_loss_and_writes_a_complete_run_folder(dataset, tmp_path):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "lenet5", "--epochs", "6", "--batch-size", "32") == 0
    rows = read_metrics(run)
    assert len(rows) == 6
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[-1]["val_acc"]) > float(rows[0]["train_acc"])
    for name in ("config.json", "metrics.csv", "grad_norms.csv", "last.npz", "best.npz", "results.json",
                 "samples.npz", "feature_maps.npz"):
        assert (run / name).is_file(), name
    with open(run / "lr.csv") as f:
        lr = list(csv.DictReader(f))
    assert [int(r["step"]) for r in lr] == list(range(1, 6 * 16 + 1))  # 500 images in batches of 32
    assert float(lr[-1]["epochs"]) == 6 and lr[15]["lr"] == rows[0]["lr"]  # metrics.csv: each epoch's last
    results = json.loads((run / "results.json").read_text())
    assert results["test_accuracy"] > 0.9
    assert results["weights"] == "last"
    assert np.array(results["confusion_matrix"]).sum() == 200
    assert json.loads((run / "config.json").read_text())["model"] == "lenet5"


@pytest.mark.parametrize("model", [name for name in sorted(MODELS) if name != "lenet5"])  # lenet5: above
def test_every_model_trains_one_epoch_on_the_synthetic_digits(dataset, tmp_path, model):
    assert train(dataset, tmp_path / model, "--model", model, "--epochs", "1", "--batch-size", "50",
                 "--limit-train", "200") == 0
    assert (tmp_path / model / "results.json").is_file()


def test_the_same_seed_gives_identical_metrics_on_the_cpu(dataset, tmp_path):
    for name in ("a", "b"):
        train(dataset, tmp_path / name, "--model", "mlp_v2", "--epochs", "2", "--seed", "7")
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop_time(read_metrics(tmp_path / "a")) == drop_time(read_metrics(tmp_path / "b"))
    a, b = load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key])


def test_a_run_interrupted_mid_epoch_and_resumed_ends_with_bit_identical_weights(dataset, tmp_path, monkeypatch):
    config = make_config("cnn_bn", epochs=2, batch_size=64, data_dir=str(dataset), val_size=100,
                         augment=True, dropout=None, seed=3)
    straight = Trainer(config, tmp_path / "straight", progress=False, log=lambda *a: None)
    straight.fit()

    interrupted = Trainer(config, tmp_path / "interrupted", progress=False, log=lambda *a: None)
    real_step, calls = interrupted.optimizer.step, []

    def step_then_signal():
        real_step()
        calls.append(1)
        if len(calls) == 12:  # the middle of the second epoch (8 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(interrupted.optimizer, "step", step_then_signal)
    with pytest.raises(TrainingInterrupted, match="resume with"):
        interrupted.fit()

    resumed = Trainer.resume(tmp_path / "interrupted", progress=False, log=lambda *a: None)
    assert (resumed.epoch, resumed.step) == (1, 4)
    resumed.fit()
    final = resumed.model.state_dict()
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(final[key], value, err_msg=key)


def interrupted_run(config, out, steps, monkeypatch):
    """Train `config` into `out` until SIGINT arrives after `steps` optimizer steps (a checkpoint is saved)."""
    trainer = Trainer(config, out, progress=False, log=lambda *a: None)
    real_step, calls = trainer.optimizer.step, []

    def step_then_signal():
        real_step()
        calls.append(1)
        if len(calls) == steps:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(trainer.optimizer, "step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()


@pytest.mark.parametrize("overrides", [dict(optimizer="rmsprop"), dict(optimizer="sgd", momentum=0.9,
                                                                       schedule="step", warmup_epochs=1)])
def test_a_checkpoint_in_the_former_optimizer_layout_and_format_resumes_to_bit_identical_weights(
        dataset, tmp_path, monkeypatch, overrides):
    config = make_config("mlp_64_32", epochs=2, batch_size=64, data_dir=str(dataset), val_size=100, seed=4,
                         **overrides)
    straight = Trainer(config, tmp_path / "straight", progress=False, log=lambda *a: None)
    straight.fit()
    interrupted_run(config, tmp_path / "old", 11, monkeypatch)
    state = load_checkpoint(tmp_path / "old" / "last.npz")
    state["optimizer"] = old_optimizer_layout(state["optimizer"])
    if "schedule" in state:  # LinearWarmup(after=StepLR) as it saved itself: the step counts and base rates
        former = lambda s: {"last_epoch": s["last_epoch"], "base_lrs": s["base_lrs"]}
        state["schedule"] = {**former(state["schedule"]), "after": former(state["schedule"]["after"])}
    save_as_format_1(tmp_path / "old" / "last.npz", state)

    resumed = Trainer.resume(tmp_path / "old", progress=False, log=lambda *a: None)
    assert (resumed.epoch, resumed.step) == (1, 3) and list(resumed.optimizer.state_dict()["state"]) == [*range(6)]
    resumed.fit()
    final = resumed.model.state_dict()
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(final[key], value, err_msg=key)


def test_an_ema_run_with_strong_augmentation_resumes_to_bit_identical_weights_and_averages(
        dataset, tmp_path, monkeypatch):
    config = make_config("cnn_bn", epochs=2, batch_size=64, data_dir=str(dataset), val_size=100, augment=True,
                         rotate=20.0, translate=0.2, scale=0.1, elastic=72.0, elastic_sigma=6.0, ema=0.9, seed=5)
    straight = Trainer(config, tmp_path / "straight", progress=False, log=lambda *a: None)
    straight_results = straight.fit()

    interrupted = Trainer(config, tmp_path / "interrupted", progress=False, log=lambda *a: None)
    real_step, calls = interrupted.optimizer.step, []

    def step_then_signal():
        real_step()
        calls.append(1)
        if len(calls) == 11:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(interrupted.optimizer, "step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        interrupted.fit()
    resumed = Trainer.resume(tmp_path / "interrupted", progress=False, log=lambda *a: None)
    resumed_results = resumed.fit()
    for mine, theirs in ((resumed.model, straight.model), (resumed.ema, straight.ema)):
        final = mine.state_dict()
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(final[key], value, err_msg=key)
    assert int(resumed.ema.n_averaged.item()) == 16  # every step of both epochs folded in once
    assert resumed_results["test_accuracy"] == straight_results["test_accuracy"]
    assert straight_results["averaged"] == "ema 0.9"


def test_an_ema_run_is_validated_tested_and_served_with_the_average(dataset, tmp_path):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "lenet5", "--epochs", "2", "--batch-size", "64", "--ema", "0.95") == 0
    state = load_checkpoint(run / "last.npz")
    model, _ = cli.load_trained(run)
    loaded = model.state_dict()
    for key, value in state["ema"].items():
        if key.startswith("module."):
            np.testing.assert_array_equal(loaded[key[len("module."):]], value)
    assert any(not np.array_equal(state["ema"]["module." + k], v) for k, v in state["model"].items())
    results = json.loads((run / "results.json").read_text())
    assert results["averaged"] == "ema 0.95"


@pytest.mark.parametrize("argv, message", [
    (["--ema", "1.5"], "EMA decay must be in"),
    (["--rotate", "200"], "rotation range must be 0 to 180"),
    (["--translate", "1.5"], "translate must be a fraction"),
    (["--scale", "0.1", "--no-augment"], "leave out --no-augment"),
    (["--elastic", "72", "--no-augment"], "leave out --no-augment"),
    (["--elastic-sigma", "6"], "give --elastic ALPHA too"),
])
def test_bad_ema_and_augmentation_options_are_refused_in_one_line(dataset, tmp_path, capsys, argv, message):
    assert train(dataset, tmp_path / "run", "--model", "lenet5", "--epochs", "1", *argv) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--betas", "0.9"], "betas must be two numbers in [0, 1)"),
    (["--betas", "0.9,1.0"], "betas must be two numbers in [0, 1)"),
    (["--betas", "0.8,0.9", "--optimizer", "sgd"], "optimizer 'sgd' has none: leave out --betas"),
])
def test_bad_betas_are_refused_in_one_line(dataset, tmp_path, capsys, argv, message):
    assert train(dataset, tmp_path / "run", "--model", "lenet5", "--epochs", "1", *argv) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_betas_reach_the_config_and_the_optimizer_and_a_recipe_s_betas_stay_with_its_adam(dataset, tmp_path):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "mlp_v2", "--epochs", "1", "--optimizer", "adamw", "--betas", "0.8,0.95") == 0
    assert json.loads((run / "config.json").read_text())["betas"] == [0.8, 0.95]
    trainer = Trainer.resume(run, progress=False, log=lambda *a: None)
    assert trainer.optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    assert make_config("sprint_cnn")["betas"] == (0.7, 0.9)
    assert make_config("sprint_cnn", optimizer="adamw")["betas"] == (0.7, 0.9)
    assert make_config("sprint_cnn", optimizer="sgd")["betas"] == (0.9, 0.999)  # no error: the user set no betas


def test_a_config_saved_before_betas_existed_trains_with_adam_s_defaults():
    config = make_config("lenet5")
    del config["betas"]
    optimizer = make_optimizer(config, [nn.Parameter(np.zeros(2, np.float32))], optim)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)


def test_augmentation_ranges_imply_augment_and_reach_the_config(dataset, tmp_path):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "mlp_v2", "--epochs", "1", "--rotate", "20", "--translate", "0.2") == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["augment"], config["rotate"], config["translate"], config["scale"]) == (True, 20.0, 0.2, 0.0)
    assert config["elastic"] is None


def test_an_elastic_distortion_implies_augment_and_reaches_the_training_batches(dataset, tmp_path):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "mlp_v2", "--epochs", "1", "--elastic", "72", "--elastic-sigma", "6") == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["augment"], config["elastic"], config["elastic_sigma"], config["rotate"]) == (True, 72.0, 6.0, 10.0)
    augment = augmentation(config)
    assert isinstance(augment, data.RandomDistortion)
    assert (augment.elastic.alpha, augment.elastic.sigma, augment.affine.degrees) == (72.0, 6.0, 10.0)


def test_a_config_saved_before_elastic_existed_augments_as_it_did(dataset, tmp_path):
    config = make_config("mlp_v2", augment=True, rotate=15.0)
    for key in ("elastic", "elastic_sigma"):
        del config[key]
    images = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(augmentation(config)(images, np.random.default_rng(1)),
                                  data.RandomAffine(15.0)(images, np.random.default_rng(1)))


def test_a_run_interrupted_before_lr_csv_existed_resumes(dataset, tmp_path, monkeypatch):
    config = make_config("mlp_v2", epochs=2, batch_size=64, data_dir=str(dataset), val_size=100, seed=3)
    trainer = Trainer(config, tmp_path / "run", progress=False, log=lambda *a: None)
    real_step, calls = trainer.optimizer.step, []

    def step_then_signal():
        real_step()
        calls.append(1)
        if len(calls) == 10:  # the second epoch's third step
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(trainer.optimizer, "step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "last.npz")  # as the code before lr.csv wrote it:
    state["epoch_state"]["lr"] = state["epoch_state"].pop("lrs")[-1]
    save_checkpoint(tmp_path / "run" / "last.npz", state)
    (tmp_path / "run" / "lr.csv").unlink()
    Trainer.resume(tmp_path / "run", progress=False, log=lambda *a: None).fit()
    assert len(read_metrics(tmp_path / "run")) == 2
    with open(tmp_path / "run" / "lr.csv") as f:
        assert next(csv.reader(f)) == ["step", "epochs", "lr"]


def test_evaluate_prints_the_metrics_of_a_run(dataset, tmp_path, capsys):
    train(dataset, tmp_path / "run", "--model", "mlp_v2", "--epochs", "2")
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "run"), "--data-dir", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "macro" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())  # the same weights, scored alike
    assert f"test loss {results['test_loss']:.4f}  test accuracy {100 * results['test_accuracy']:.2f}%" in out


def test_predict_reads_a_png_and_prints_the_digit(dataset, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    train(dataset, tmp_path / "run", "--model", "mlp_v2", "--epochs", "3")
    images, labels = make_split(10, np.random.default_rng(99))
    path = tmp_path / "digit.png"
    big = np.kron(255 - images[0], np.ones((8, 8), np.uint8))  # dark on light and larger, like a scan
    Image.fromarray(big).save(path)
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "run"), str(path), "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: ") and "%" in line


def test_report_writes_its_page_into_the_run_folder_or_where_out_says(tmp_path, capsys, monkeypatch):
    for name in ("a", "b"):
        make_fake_run(tmp_path / name)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # pages without plots: quicker, same places
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(["report", "a"]) == 0
    assert capsys.readouterr().out.strip() == "a/report.html" and (tmp_path / "a" / "report.html").is_file()
    assert cli.main(["report", "a", "b"]) == 0
    assert (tmp_path / "a" / "compare.html").is_file()
    assert cli.main(["report", "a", "b", "--out", "pages/both.html"]) == 0
    assert (tmp_path / "pages" / "both.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "pages"]


def test_with_early_stopping_the_best_weights_are_tested_and_evaluate_uses_them_too(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(dataset, run, "--model", "mlp_v2", "--epochs", "8", "--patience", "2", "--lr", "0.05") == 0
    results = json.loads((run / "results.json").read_text())
    assert results["weights"] == "best"
    val_losses = [float(r["val_loss"]) for r in read_metrics(run)]
    assert val_losses[results["best_epoch"] - 1] == min(val_losses)
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data-dir", str(dataset)]) == 0
    assert f"test accuracy {100 * results['test_accuracy']:.2f}%" in capsys.readouterr().out
