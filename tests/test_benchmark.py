"""The benchmark's machinery on a small synthetic dataset: what it prints and writes, never how fast."""
import contextlib
import io
import json
import sys

import pytest

from tinygrad_mnist import cli
from tinygrad_mnist.benchmark import NO_TORCH, render_markdown
from tinygrad_mnist.benchmark.measure import OpTimer
from tinygrad_mnist.benchmark.render import EPOCH_HEADERS, FORMS_HEADERS, OPS_HEADERS
from tinygrad_mnist.torch_twin import INSTALL_HINT


QUICK = ["--rounds", "1", "--limit", "96", "--batch-size", "32", "--warmup-steps", "1", "--op-reps", "1"]


@pytest.fixture(scope="module")
def full_run(dataset, tmp_path_factory):
    """One run of both models and the op table, with its stdout, markdown and JSON."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("bench")
    argv = ["--data-dir", str(dataset), "--model", "all", *QUICK, "--profile", "--profile-steps", "2",
            "--markdown", str(out / "BENCHMARKS.md"), "--json", str(out / "results.json")]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["benchmark", *argv]) == 0
    return dict(stdout=stdout.getvalue(), markdown=(out / "BENCHMARKS.md").read_text(),
                results=json.loads((out / "results.json").read_text()))


def rows_of(text, first_cell):
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} ")]


def test_the_epoch_table_has_the_expected_columns_and_a_row_per_model(full_run):
    for header in EPOCH_HEADERS:
        assert header in full_run["stdout"]
    for model in ("lenet5", "mlp"):
        cells = rows_of(full_run["stdout"], model)[0].split("|")[1:-1]
        assert len(cells) == len(EPOCH_HEADERS)
        assert float(cells[3].split()[0]) > 0  # the engine / torch ratio


def test_the_op_table_times_every_op_forward_and_backward_against_torch(full_run):
    for header in OPS_HEADERS:
        assert header in full_run["stdout"]
    op_section = full_run["stdout"].split("Per-op timings")[1].split("Array forms")[0]
    for op in ("conv2d", "max_pool2d", "linear", "relu", "cross_entropy"):
        for row in rows_of(op_section, op):
            cells = row.split("|")[1:-1]
            assert len(cells) == len(OPS_HEADERS)
            assert float(cells[4]) > 0 and float(cells[7]) > 0
    assert len(rows_of(op_section, "conv2d")) == 2


def test_the_forms_table_times_both_forms_of_each_choice_in_ops(full_run):
    for header in FORMS_HEADERS:
        assert header in full_run["stdout"]
    rows = full_run["results"]["forms"]["rows"]
    assert [r["form"].split(":")[0] for r in rows] == ["conv1 weight gradient", "conv2 weight gradient"] + [
        f"forward product with {k} output channels" for k in (5, 6, 7)] + ["ReLU forward"]
    assert all(r["chosen_ms"] > 0 and r["alternative_ms"] > 0 for r in rows)
    assert "## Array forms" in full_run["markdown"]


def test_the_op_timer_times_each_op_forward_and_backward_through_the_tape_s_hooks():
    import numpy as np

    from tinygrad_mnist import Tensor
    from tinygrad_mnist import functional as F
    from tinygrad_mnist.tensor import op_hooks
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with OpTimer() as timer:
        F.relu(x).sum().backward()
    assert op_hooks == []
    assert set(timer.seconds) == {"relu (2,3) forward", "relu (2,3) backward", "sum (2,3) forward",
                                  "sum (2,3) backward"}
    F.relu(x).sum().backward()  # after the block nothing reports to the timer
    assert len(timer.seconds) == 4


def test_the_profile_splits_each_frameworks_step_into_its_ops(full_run):
    profile = full_run["results"]["profile"]
    engine = dict(profile["engine"]["rows"])
    for op in ("conv2d (32,1,28,28)", "conv2d (32,6,12,12)", "maxpool2d (32,6,24,24)", "crossentropy (32,10)"):
        assert engine[f"{op} forward"] > 0 and engine[f"{op} backward"] > 0
    assert engine["optimizer step (Adam)"] > 0
    assert sum(engine.values()) <= profile["engine"]["step_ms"]  # the entries are disjoint parts of the step
    assert any(name.startswith("aten::") for name, _ in profile["torch"]["rows"])
    for framework in ("engine", "torch"):
        assert f"Where a LeNet-5 training step goes, {framework}" in full_run["stdout"]
    assert "## Where a training step's time goes" in full_run["markdown"]
    assert rows_of(full_run["markdown"], "whole step") and rows_of(full_run["markdown"], "rest (not in any entry)")


def test_both_frameworks_train_the_same_model_from_the_same_weights_on_the_same_batches(full_run):
    for entry in full_run["results"]["epochs"]:
        ours, theirs = entry["engine"][0], entry["torch"][0]
        assert ours["samples"] == theirs["samples"] == 96
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-3)


def test_every_worker_runs_with_the_requested_thread_count(full_run):
    for entry in full_run["results"]["epochs"]:
        assert entry["torch"][0]["torch_threads"] == 1
        for result in (entry["engine"][0], entry["torch"][0]):
            assert result["blas_threads"] in (1, None)  # None: this BLAS cannot be asked


def test_the_markdown_page_holds_the_machine_the_command_and_every_table(full_run):
    page = full_run["markdown"]
    for section in ("# Benchmarks", "## Machine", "## Command", "## One training epoch", "## Per-op timings",
                    "## Time to 99% test accuracy"):
        assert section in page
    assert "tinygrad-mnist benchmark --data-dir" in page
    assert "Peak memory" in page and "Not measured by the command above." in page
    assert rows_of(page, "lenet5") and rows_of(page, "cross_entropy")


@pytest.fixture
def torch_hidden(tmp_path, monkeypatch):
    """`import torch` fails here and in every worker process started from here."""
    (tmp_path / "torch.py").write_text("raise ImportError('hidden by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)


def test_without_torch_the_torch_columns_say_torch_not_installed_and_how_to_install_it(dataset, torch_hidden,
                                                                                     capsys):
    assert cli.main(["benchmark", "--data-dir", str(dataset), "--model", "mlp", *QUICK]) == 0
    captured = capsys.readouterr()
    assert INSTALL_HINT in captured.err
    out = captured.out
    epoch_cells = [c.strip() for c in rows_of(out, "mlp")[0].split("|")[1:-1]]
    assert epoch_cells[2] == NO_TORCH and epoch_cells[3] == "–"
    for row in rows_of(out, "relu"):
        assert NO_TORCH in row


def test_time_to_target_stops_at_the_first_evaluation_that_reaches_it(dataset, capsys):
    argv = ["--data-dir", str(dataset), "--time-to-99", "mlp_v2", "--epochs", "2", "--limit", "64",
            "--batch-size", "16", "--eval-every", "2", "--target", "0"]
    assert cli.main(["benchmark", *argv]) == 0
    out = capsys.readouterr().out
    assert "0.00% test accuracy reached after" in out and "(epoch 1, step 2;" in out
    assert "One training epoch" not in out and "Per-op timings" not in out


def test_time_to_target_says_so_when_the_target_is_not_reached(dataset, capsys):
    argv = ["--data-dir", str(dataset), "--time-to-99", "--epochs", "1", "--limit", "32", "--target", "1"]
    assert cli.main(["benchmark", *argv]) == 0
    assert "100.00% test accuracy not reached (all epochs run" in capsys.readouterr().out


def test_the_markdown_page_says_which_parts_were_not_measured():
    results = dict(machine=dict(cpu="Test CPU", cores=2, python="3", numpy="2", blas="openblas", torch="2"),
                   settings=dict(threads=1, rounds=3, batch_size=128, lr=1e-3, limit=None, device="cpu",
                                 warmup_steps=5, op_reps=20),
                   load_before=[0.5, 0.5, 0.5], load_after=None, command="tinygrad-mnist benchmark --no-train",
                   epochs=None, ops=dict(rows=[dict(op="relu", shapes="(128,120)", engine_fwd_ms=0.02,
                                                    engine_bwd_ms=0.03)], torch_error=NO_TORCH),
                   time_to_99=None)
    page = render_markdown(results)
    epoch_section = page.split("## One training epoch")[1].split("##")[0]
    assert "Not measured by the command above." in epoch_section
    assert "- CPU: Test CPU, 2 cores" in page and "after: n/a" in page
    assert NO_TORCH in rows_of(page, "relu")[0]
