"""Trying to break it: every bad input gets one clear line and exit code 2; nothing is lost."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from tinygrad_mnist import Tensor, checkpoint, cli
from tinygrad_mnist import functional as F
from tinygrad_mnist.checkpoint import load_checkpoint, save_checkpoint
from tinygrad_mnist.models import build_model
from tinygrad_mnist.optim import Adam
from tinygrad_mnist.training import evaluate


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    assert cli.main(["train", "--model", "mlp_v2", "--epochs", "1", "--data-dir", str(dataset), "--out", str(out),
                     "--val-size", "50", "--no-progress", "--no-plots"]) == 0
    return out


def fails_with(capsys, argv, *fragments, code=2):
    """Run the CLI, expect `code`, one line on stderr with every fragment, and no traceback."""
    capsys.readouterr()
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    last = err[-1]
    for fragment in fragments:
        assert fragment in last, f"{fragment!r} not in {last!r}"
    assert not any("Traceback" in line for line in err)
    return last


def parser_fails_with(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_an_unknown_model_is_one_line_and_exit_code_2(capsys):
    parser_fails_with(capsys, ["train", "--model", "no_such_model"], "invalid choice: 'no_such_model'")


def test_an_unknown_option_is_one_line_and_exit_code_2(capsys):
    parser_fails_with(capsys, ["train", "--learning-speed", "3"], "unrecognized arguments")


@pytest.mark.parametrize("flag,value", [("--lr", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--batch-size", "-4"),
                                        ("--epochs", "0"), ("--lr", "fast")])
def test_a_non_positive_or_non_numeric_setting_is_refused(capsys, flag, value):
    parser_fails_with(capsys, ["train", flag, value], flag)


@pytest.mark.parametrize("argv", [["compare", "--steps", "-5"], ["compare", "--steps", "0"],
                                  ["compare", "--epochs", "0"], ["compare", "--batch-size", "-1"],
                                  ["compare", "--val-size", "-3"],
                                  ["benchmark", "--rounds", "0"], ["benchmark", "--limit", "0"],
                                  ["benchmark", "--threads", "-2"], ["benchmark", "--batch-size", "0"],
                                  ["benchmark", "--target", "1.5"], ["benchmark", "--warmup-steps", "-1"],
                                  ["benchmark", "--lr", "0"]])
def test_compare_and_benchmark_refuse_a_number_out_of_range(capsys, argv):
    parser_fails_with(capsys, argv, argv[1])


def test_a_missing_data_folder_names_the_missing_files(capsys, tmp_path):
    fails_with(capsys, ["train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"),
                        "--no-progress"], "train-images-idx3-ubyte")


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_a_train_that_fails_on_its_data_creates_neither_the_run_nor_the_data_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_MNIST_MIRRORS", closed_port_url())  # offline, and quickly so
    fails_with(capsys, ["train", "--data-dir", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "runs" / "r"),
                        "--no-progress"], "Download the files by hand", "nonexistent")
    assert os.listdir(tmp_path) == []


def test_resume_refuses_options_that_would_change_the_run(capsys, run):
    fails_with(capsys, ["train", "--resume", str(run), "--epochs", "5", "--lr", "0.1"],
               "continues the run as it was configured", "--epochs, --lr")


def test_resuming_a_finished_run_says_so_and_changes_nothing(capsys, run):
    before = (run / "results.json").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--no-progress", "--no-plots"]) == 0
    assert "has finished: nothing to resume" in capsys.readouterr().err
    assert (run / "results.json").read_bytes() == before


def test_a_folder_that_cannot_be_written_is_refused_before_training(capsys, dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fails_with(capsys, ["train", "--data-dir", str(dataset), "--out", str(blocker / "run")], "cannot write there")


def test_an_existing_run_is_not_overwritten(capsys, dataset, run):
    fails_with(capsys, ["train", "--data-dir", str(dataset), "--out", str(run)], "already holds a run", "--resume")


def test_a_gpu_asked_for_where_there_is_none_is_a_clear_error(capsys, dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    fails_with(capsys, ["train", "--device", "cuda", "--data-dir", str(dataset), "--out", str(tmp_path / "r")],
               "cuda", "pip install")


def test_a_corrupt_idx_file_names_the_file_and_the_problem(capsys, dataset, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in dataset.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    fails_with(capsys, ["train", "--data-dir", str(broken), "--out", str(tmp_path / "r"), "--no-progress"],
               "train-labels-idx1-ubyte.gz")


def predict_fails_with(capsys, run, path, fragment):
    """predict on one unreadable file: exit 2, its error line, then the summary; no traceback."""
    capsys.readouterr()
    assert cli.main(["predict", str(run), str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"{path}: error: ") and fragment in err[0], err[0]
    assert err[1] == "0 images read, 1 failed"


@pytest.mark.parametrize("content,fragment", [(b"", "empty file"), (b"just some text", "not an image")])
def test_predict_on_a_non_image_or_empty_file_is_one_line(capsys, run, tmp_path, content, fragment):
    path = tmp_path / "digit.png"
    path.write_bytes(content)
    predict_fails_with(capsys, run, path, fragment)


def test_predict_on_a_huge_image_refuses_before_decoding(capsys, run, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "huge.png"
    Image.new("L", (9000, 9000)).save(path)  # 81 megapixels; compresses to a few kilobytes
    predict_fails_with(capsys, run, path, "too large")


def test_predict_on_a_missing_file_is_one_line(capsys, run, tmp_path):
    predict_fails_with(capsys, run, tmp_path / "none.png", "no such file")


def test_a_checkpoint_with_other_parameter_shapes_names_the_first_mismatch(capsys, run, tmp_path):
    state = load_checkpoint(run / "last.npz")
    state["model"]["fc1.weight"] = np.zeros((64, 784), np.float32)
    save_checkpoint(tmp_path / "bad.npz", state)
    fails_with(capsys, ["evaluate", str(tmp_path / "bad.npz")], "fc1.weight", "(64, 784)", "(128, 784)")


def test_a_checkpoint_from_a_newer_format_is_refused(capsys, run, tmp_path):
    members = dict(np.load(run / "last.npz", allow_pickle=False))
    members["__format_version__"] = np.array(99)
    np.savez(tmp_path / "future.npz", **members)
    fails_with(capsys, ["evaluate", str(tmp_path / "future.npz")], "newer", "upgrade")


def test_a_pickled_checkpoint_is_refused_and_nothing_in_it_runs(capsys, tmp_path):
    marker = tmp_path / "ran"
    payload = np.array([Exploit(str(marker))], dtype=object)
    np.savez(tmp_path / "evil.npz", __format_version__=np.array(1), model=payload)
    fails_with(capsys, ["evaluate", str(tmp_path / "evil.npz")], "refusing to load")
    assert not marker.exists()


class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_diverging_loss_stops_at_once_names_the_step_and_keeps_the_last_good_checkpoint(capsys, dataset, tmp_path):
    out = tmp_path / "nan"
    last = fails_with(capsys, ["train", "--model", "mlp_533", "--data-dir", str(dataset), "--out", str(out),
                               "--lr", "1e4", "--epochs", "3", "--val-size", "50", "--no-progress"],
                      "the loss became", "step", "last finite loss", "lower learning rate", code=1)
    assert "epoch" in last
    if (out / "last.npz").exists():  # diverged after the first epoch: that checkpoint must still load
        load_checkpoint(out / "last.npz")


def test_a_full_disk_while_checkpointing_stops_with_one_line_and_keeps_the_earlier_checkpoint(
        capsys, dataset, tmp_path, monkeypatch):
    write, writes = checkpoint._write_npz, []

    def disk_full_on_the_third_write(f, members):  # epoch 1 writes last.npz and best.npz; then epoch 2
        writes.append(1)
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(f, members)
    monkeypatch.setattr(checkpoint, "_write_npz", disk_full_on_the_third_write)
    out = tmp_path / "run"
    fails_with(capsys, ["train", "--model", "mlp_v2", "--epochs", "3", "--data-dir", str(dataset), "--out", str(out),
                        "--val-size", "50", "--no-progress", "--no-plots"],
               "No space left on device", str(out / "last.npz"), "intact", "--resume")
    assert load_checkpoint(out / "last.npz")["progress"]["epoch"] == 1
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".npz" or ".tmp" in p.name) == ["best.npz", "last.npz"]


def test_sigterm_during_training_saves_a_checkpoint_exits_non_zero_and_resumes(dataset, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tinygrad_mnist.cli", "train", "--model", "lenet5", "--epochs", "50",
               "--batch-size", "16", "--data-dir", str(dataset), "--out", str(out), "--val-size", "50",
               "--no-progress", "--no-plots"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "last.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "SIGTERM" in err and "checkpoint saved" in err and "Traceback" not in err
    state = load_checkpoint(out / "last.npz")
    stopped_at = (state["progress"]["epoch"], state["progress"]["step"])
    resumed = subprocess.run([sys.executable, "-m", "tinygrad_mnist.cli", "train", "--resume", str(out),
                              "--no-progress", "--no-plots"], capture_output=True, text=True, timeout=600,
                             env=dict(os.environ))
    assert f"resuming {out} at epoch {stopped_at[0] + 1}" in resumed.stderr
    # Stop the resumed run's 50 epochs early: it is enough that it went on from where it stopped.
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 50


def test_memory_stays_flat_over_many_training_steps():
    model = build_model("lenet5")
    optimizer = Adam(list(model.parameters()))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 32)

    def step():
        loss = F.cross_entropy(model(Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    tracemalloc.start()
    try:
        for _ in range(10):
            step()
        after_10 = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            step()
        after_110 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_110 - after_10 < 1_000_000, f"memory grew by {after_110 - after_10} bytes over 100 steps"


def test_evaluation_runs_in_bounded_batches():
    model = build_model("mlp_v2")
    seen = []
    forward = model.forward
    model.forward = lambda x: seen.append(x.shape[0]) or forward(x)
    x = np.zeros((2500, 1, 28, 28), np.float32)
    evaluate(model, x, np.zeros(2500, np.int64), batch_size=1000)
    assert seen == [1000, 1000, 500]
