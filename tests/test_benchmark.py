"""The benchmark's machinery on a small synthetic dataset: what it prints and writes, never how fast."""
import contextlib
import io
import json
import sys

import numpy as np
import pytest

import tinygrad_mnist.benchmark as bench
from tinygrad_mnist import cli
from tinygrad_mnist.benchmark import NO_TORCH, render_markdown
from tinygrad_mnist.benchmark.measure import OpTimer, ProductRecorder, time_products
from tinygrad_mnist.benchmark.render import (EPOCH_HEADERS, FORMS_HEADERS, OPS_HEADERS, PRODUCTS_HEADERS,
                                             TIME_TO_TARGET_HEADERS)
from tinygrad_mnist.torch_twin import INSTALL_HINT


QUICK = ["--rounds", "1", "--limit", "96", "--batch-size", "32", "--warmup-steps", "1", "--op-reps", "1"]
MODELS = ("lenet5", "mlp_64_32")  # without dropout, so that both frameworks' losses agree
BATCHES = (16, 32)


@pytest.fixture(scope="module")
def full_run(dataset, tmp_path_factory):
    """One run of two models at two batch sizes, the scaling table (at small batch sizes and widths), the op
    table and the profile, with its stdout, markdown, JSON and plot."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bench")
    argv = ["--data-dir", str(dataset), "--model", ",".join(MODELS), *QUICK, "--batch-size", "16,32", "--train",
            "--ops", "--scaling", "--profile", "--profile-steps", "2", "--markdown", str(out / "BENCHMARKS.md"),
            "--json", str(out / "results.json")]
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        # scaling cells that the epoch table already measured (lenet5 at 16 and 32) are measured once
        mp.setattr(bench, "SCALING_BATCH_SIZES", BATCHES)
        mp.setattr(bench, "SCALING_WIDTHS", (1, 2))
        mp.setattr(bench, "SCALING_WIDTH_BATCH", 32)
        mp.setattr(bench, "OP_ROUNDS", 1)
        assert cli.main(["benchmark", *argv]) == 0
    return dict(stdout=stdout.getvalue(), markdown=(out / "BENCHMARKS.md").read_text(), out=out, argv=argv,
                results=json.loads((out / "results.json").read_text()))


def rows_of(text, first_cell):
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} ")]


def cells_of(row):
    return [c.strip() for c in row.split("|")[1:-1]]


def test_the_epoch_table_has_the_expected_columns_and_a_row_per_model_and_batch_size(full_run):
    for header in EPOCH_HEADERS:
        assert header in full_run["stdout"]
    epoch_section = full_run["stdout"].split("Seconds per epoch")[0]
    for model in MODELS:
        rows = [cells_of(row) for row in rows_of(epoch_section, model)]
        assert [int(cells[1]) for cells in rows] == list(BATCHES)
        for cells in rows:
            assert len(cells) == len(EPOCH_HEADERS)
            assert float(cells[2]) > 0 and float(cells[3]) > 0  # ms/step of each framework
            assert float(cells[4]) > 0 and float(cells[7]) > 0  # the time and the peak-memory ratios


def test_ms_per_step_is_the_epoch_time_over_its_steps(full_run):
    for entry in full_run["results"]["epochs"]:
        ours = entry["engine"][0]
        assert ours["steps"] == -(-96 // entry["batch_size"])  # 96 images: 6 steps of 16, 3 of 32
        row = next(cells_of(r) for r in rows_of(full_run["stdout"], entry["model"])
                   if cells_of(r)[1] == str(entry["batch_size"]))
        assert float(row[2]) == pytest.approx(1e3 * ours["seconds"] / ours["steps"], rel=0.01)


def test_the_peak_memory_of_both_frameworks_is_measured_in_their_own_worker_processes(full_run):
    for entry in full_run["results"]["epochs"]:
        for result in (entry["engine"][0], entry["torch"][0]):
            assert result["peak_mib"] >= 0 and "peak RSS" in result["memory_method"]
    assert "Peak memory: peak RSS" in full_run["stdout"]


def test_the_scaling_table_gives_seconds_per_epoch_against_batch_size_and_width(full_run):
    scaling = full_run["results"]["scaling"]
    assert [c["batch_size"] for c in scaling["batch"]] == list(BATCHES)
    assert [(c["width"], c["batch_size"]) for c in scaling["width"]] == [(1, 32), (2, 32)]
    assert scaling["batch"][1]["engine"] == scaling["width"][0]["engine"]  # the same cell, measured once
    ours = scaling["width"][1]["engine"][0]
    text = full_run["stdout"].split("Against the width")[1]
    row = cells_of(rows_of(text, "×2")[0])
    assert row[1] == "12, 32"  # LeNet-5's 6 and 16 channels, doubled
    assert float(row[2]) == pytest.approx(ours["seconds"] * 60000 / 96, rel=0.01)  # per 60,000-image epoch
    assert float(row[3]) > 0 and float(row[4]) > 0


def test_the_scaling_plot_is_written_beside_the_markdown_and_shown_on_the_page(full_run):
    plot = full_run["out"] / "scaling.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Scaling: seconds per epoch against the work" in full_run["markdown"]
    assert "](scaling.png)" in full_run["markdown"]


def test_the_page_opens_with_the_command_that_regenerates_it(full_run):
    head = full_run["markdown"].split("## Machine")[0]
    assert f"```sh\ntinygrad-mnist benchmark {' '.join(full_run['argv'])}\n```" in head


def test_from_json_renders_the_same_page_and_plot_without_measuring(full_run, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("--from-json measured"))
    assert cli.main(["benchmark", "--from-json", str(full_run["out"] / "results.json"),
                     "--markdown", str(tmp_path / "B.md")]) == 0
    assert (tmp_path / "B.md").read_text() == full_run["markdown"]
    assert (tmp_path / "scaling.png").is_file()


def test_the_op_table_times_every_op_forward_and_backward_against_torch(full_run):
    for header in OPS_HEADERS:
        assert header in full_run["stdout"]
    op_section = full_run["stdout"].split("Per-op timings")[1].split("Array forms")[0]
    for op in ("conv2d", "max_pool2d", "linear", "relu", "cross_entropy"):
        for row in rows_of(op_section, op):
            cells = row.split("|")[1:-1]
            assert len(cells) == len(OPS_HEADERS)
            assert float(cells[2]) > 0 and float(cells[3]) > 0 and float(cells[5]) > 0 and float(cells[6]) > 0
            assert float(cells[4]) >= 0 and float(cells[7]) >= 0  # a ratio of two noisy single timings may round to 0
    assert [cells_of(r)[1].split(",")[0] for r in rows_of(op_section, "conv2d")] == ["(16", "(16", "(32", "(32"]


def test_the_forms_table_times_both_forms_of_each_choice_in_ops(full_run):
    for header in FORMS_HEADERS:
        assert header in full_run["stdout"]
    rows = full_run["results"]["forms"]["rows"]
    assert [r["form"].split(":")[0] for r in rows] == 2 * (["conv1 weight gradient", "conv2 weight gradient"] + [
        f"forward product with {k} output channels" for k in (5, 6, 7)] + 3 * ["LeNet-5 conv2 forward and backward"]
        + 3 * ["example conv2 forward and backward"] + ["resnet 64→64 conv forward and backward"]
        + ["ReLU forward"])  # per batch size
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


CONV_CASES = [  # x shape, w shape, bias, options, x requires grad
    ((2, 1, 28, 28), (6, 1, 5, 5), True, {}, False),  # 6 output rows, padded to 8 for the forward product
    ((3, 4, 9, 9), (8, 4, 3, 3), False, dict(stride=2, padding=1), True),
    ((2, 4, 10, 9), (6, 2, 3, 2), True, dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), True),
    ((2, 3, 7, 7), (5, 3, 3, 3), True, dict(padding="same", dilation=2), True),
]


@pytest.mark.parametrize("one_row_bands", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,bias,options,x_grad", CONV_CASES)
def test_the_product_recorder_gives_each_convolutions_products_at_the_shapes_the_op_multiplies(
        x_shape, w_shape, bias, options, x_grad, one_row_bands, monkeypatch):
    from tinygrad_mnist import Tensor, ops
    from tinygrad_mnist import functional as F
    if one_row_bands:  # budgets that leave one output row per band, in the op and in what is recorded
        monkeypatch.setattr(ops, "FORWARD_BAND_BYTES", 1)
        monkeypatch.setattr(ops, "BACKWARD_BAND_BYTES", 1)
        monkeypatch.setattr(ops, "MIN_BAND_COLUMNS", 0)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(x_shape, dtype=np.float32), requires_grad=x_grad)
    w = Tensor(rng.standard_normal(w_shape, dtype=np.float32), requires_grad=True)
    b = Tensor(np.zeros(w_shape[0], np.float32), requires_grad=True) if bias else None
    with ProductRecorder() as recorder:
        out = F.conv2d(x, w, b, **options)
    o, ho = w_shape[0], out.shape[2]
    pixels = out.shape[0] * out.shape[2] * out.shape[3]  # N·Ho·Wo: the columns of each product, over its bands
    groups = options.get("groups", 1)
    general = set(options) - {"padding", "stride"} or not all(isinstance(v, int) for v in options.values())
    rows = int(np.prod(w_shape[1:]))  # C/groups·kh·kw
    products = recorder.products
    if general:  # one product each, every group at once
        assert [(form, a[0], b[0]) for form, a, b in products] == [
            ("matmul", (groups, o // groups, rows), (groups, rows, pixels)),
            ("matmul", (groups, o // groups, pixels), (groups, pixels, rows)),
            *[("matmul", (groups, rows, o // groups), (groups, o // groups, pixels))] * x_grad]
    else:  # the bias as one more column row; 5 to 7 output rows padded to 8
        forward = [b for form, a, b in products if form == "matmul" and a[0] == (8 if 4 < o < 8 else o, rows + bias)]
        weight = [b for form, a, b in products if form == "weight_grad"]
        inputs = [b for form, a, b in products if form == "matmul" and a[0] == (rows, o)]
        assert len(forward) + len(weight) + len(inputs) == len(products)
        assert [sum(s[0][1] for s in p) for p in (forward, weight, inputs)] == [pixels, pixels, pixels * x_grad]
        assert {s[0][0] for s in forward + weight} == {rows + bias} and {s[0][0] for s in inputs} <= {o}
        if one_row_bands:
            assert len(forward) == len(weight) == ho and len(inputs) == ho * x_grad
    out.sum().backward()  # recording is over: the block took its hook away
    assert recorder.products == products


def test_the_product_recorder_gives_linear_and_matmul_products_and_their_floating_point_work():
    from tinygrad_mnist import Tensor
    from tinygrad_mnist import functional as F
    x = Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    m = Tensor(np.ones((4, 2), np.float32))
    with ProductRecorder() as recorder:
        F.linear(x, w) @ m
    assert recorder.products == [
        ("matmul", ((5, 3), False), ((3, 4), True)),  # x wᵀ, wᵀ a view
        ("matmul", ((5, 4), False), ((4, 3), False)),  # dx = g w
        ("matmul", ((4, 5), True), ((5, 3), False)),  # dw = gᵀ x
        ("matmul", ((5, 4), False), ((4, 2), False)),  # (x wᵀ) m, and its left gradient: m needs none
        ("matmul", ((5, 2), False), ((2, 4), True))]
    timed = time_products(recorder.products + recorder.products[:1], reps=2)
    assert timed["products"] == 6 and timed["ms"] > 0
    assert timed["gflop"] == pytest.approx(2 * (2 * 5 * 3 * 4 + 5 * 4 * 3 + 4 * 5 * 3 + 5 * 4 * 2 + 5 * 2 * 4) / 1e9)


def lenet5_gflop(n):
    """LeNet-5's matrix products in a training step of a batch of n, as the engine computes them: conv1
    (6 output rows padded to 8, 25 taps and the bias row, 24×24 pixels) forward and weight gradient; conv2
    (150 taps and the bias row, 8×8 pixels) forward, weight and input gradient; each linear's three."""
    conv1 = 2 * 8 * 26 * 576 + 2 * 6 * 26 * 576
    conv2 = 2 * (2 * 16 * 151 * 64) + 2 * 150 * 16 * 64
    return n * (conv1 + conv2 + 3 * 2 * (256 * 120 + 120 * 84 + 84 * 10)) / 1e9


def test_the_products_table_sets_the_engines_products_against_both_whole_steps(full_run):
    for profile in full_run["results"]["profile"]:
        products = profile["engine"]["products"]
        # at least 2 per convolution, conv2's input gradient and 3 per linear; more where a conv runs in bands
        assert products["products"] >= 14 and products["ms"] > 0
        assert products["gflop"] == pytest.approx(lenet5_gflop(profile["batch_size"]))
    for header in PRODUCTS_HEADERS:
        assert header in full_run["markdown"]
    section = full_run["markdown"].split("### The engine's matrix products alone")[1].split("lenet5, batch 16, ")[0]
    rows = [cells_of(row) for row in rows_of(section, "lenet5")]
    assert [int(r[1]) for r in rows] == list(BATCHES)
    for r, profile in zip(rows, full_run["results"]["profile"]):
        products, engine, torch = profile["engine"]["products"], profile["engine"], profile["torch"]
        assert float(r[4]) == pytest.approx(products["ms"], rel=5e-3)
        assert float(r[6]) == pytest.approx(engine["step_ms"], rel=5e-3)
        assert float(r[8]) == pytest.approx(products["ms"] / torch["step_ms"], abs=5e-3)
    assert "The engine's matrix products alone (ms per step):" in full_run["stdout"]


def test_the_profile_splits_each_frameworks_step_into_its_ops(full_run):
    assert [p["batch_size"] for p in full_run["results"]["profile"]] == list(BATCHES)
    profile = full_run["results"]["profile"][1]
    engine = dict(profile["engine"]["rows"])
    for op in ("conv2d (32,1,28,28)", "conv2d (32,6,12,12)", "maxpool2d (32,6,24,24)", "crossentropy (32,10)"):
        assert engine[f"{op} forward"] > 0 and engine[f"{op} backward"] > 0
    assert engine["optimizer step (Adam)"] > 0
    assert sum(engine.values()) <= profile["engine"]["step_ms"]  # the entries are disjoint parts of the step
    assert any(name.startswith("aten::") for name, _ in profile["torch"]["rows"])
    for framework in ("engine", "torch"):
        assert f"Where a lenet5 training step goes at batch 32, {framework}" in full_run["stdout"]
    assert "## Where a training step's time goes" in full_run["markdown"]
    assert rows_of(full_run["markdown"], "whole step") and rows_of(full_run["markdown"], "rest (not in any entry)")


def test_both_frameworks_train_the_same_model_from_the_same_weights_on_the_same_batches(full_run):
    for entry in full_run["results"]["epochs"]:
        ours, theirs = entry["engine"][0], entry["torch"][0]
        assert ours["samples"] == theirs["samples"] == 96 and ours["steps"] == theirs["steps"]
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-3)


def test_every_worker_runs_with_the_requested_thread_count(full_run):
    for entry in full_run["results"]["epochs"]:
        assert entry["torch"][0]["torch_threads"] == 1
        for result in (entry["engine"][0], entry["torch"][0]):
            assert result["blas_threads"] in (1, None)  # None: this BLAS cannot be asked


def test_the_markdown_page_holds_the_machine_the_command_and_every_table(full_run):
    page = full_run["markdown"]
    for section in ("# Benchmarks", "## Machine", "## One training epoch", "## Scaling", "## Per-op timings",
                    "## Array forms", "## Where a training step's time goes", "## Time to a test accuracy"):
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
    assert cli.main(["benchmark", "--data-dir", str(dataset), "--model", "mlp_64_32", *QUICK]) == 0
    captured = capsys.readouterr()
    assert INSTALL_HINT in captured.err
    out = captured.out
    epoch_cells = cells_of(rows_of(out, "mlp_64_32")[0])
    assert epoch_cells[3] == NO_TORCH and epoch_cells[4] == "–" and epoch_cells[7] == "–"
    for row in rows_of(out, "relu"):
        assert NO_TORCH in row


def test_time_to_target_stops_at_the_first_evaluation_that_reaches_it(dataset, capsys):
    argv = ["--data-dir", str(dataset), "--time-to-99", "mlp_v2", "--epochs", "2", "--limit", "64",
            "--batch-size", "16", "--eval-every", "2", "--target", "0"]
    assert cli.main(["benchmark", *argv]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 seeds reached 0.00% test accuracy" in out
    assert "; the test set scored every 2 steps and at each epoch's end." in out
    assert "label smoothing" not in out  # mlp_v2's recipe has none
    row = cells_of(rows_of(out, "0")[0])  # seed 0
    assert row[1] == "yes" and row[4:6] == ["1", "2"]  # epoch 1, step 2
    assert "One training epoch" not in out and "Per-op timings" not in out


@pytest.mark.parametrize("betas, shown", [((0.7, 0.9), "adam lr 0.01, betas (0.7, 0.9), schedule onecycle"),
                                          ((0.9, 0.999), "adam lr 0.01, schedule onecycle"),
                                          (None, "adam lr 0.01, schedule onecycle")])  # None: a run before betas
def test_the_time_to_target_recipe_line_names_betas_other_than_adam_s_defaults(betas, shown):
    from tinygrad_mnist.benchmark.render import time_to_target_text
    from tinygrad_mnist.training import make_config

    config = make_config("sprint_cnn")
    if betas is None:
        del config["betas"]
    else:
        config["betas"] = list(betas)  # as the JSON gives it back
    reached = dict(epoch=1, step=469, accuracy=0.991, seconds=12.5)
    run = dict(target=0.99, seeds=[dict(seed=0, config=config, eval_every=0, loaded_s=1.0, history=[reached],
                                        reached=reached)])
    assert f"Recipe sprint_cnn: 1 epoch at most, batch 128, {shown}, label smoothing 0.1;" in time_to_target_text(run)


def test_time_to_target_runs_each_seed_in_its_own_process_and_reports_each_and_the_median(dataset, tmp_path,
                                                                                           capsys):
    argv = ["--data-dir", str(dataset), "--time-to-99", "mlp_v2", "--seeds", "3", "--seed", "4", "--epochs", "1",
            "--limit", "64", "--target", "0", "--label-smoothing", "0.1", "--augment", "yes",
            "--json", str(tmp_path / "r.json")]
    assert cli.main(["benchmark", *argv]) == 0
    out = capsys.readouterr().out
    for header in TIME_TO_TARGET_HEADERS:
        assert header in out
    assert "schedule constant, augmented, label smoothing 0.1;" in out  # mlp_v2's recipe has neither
    (run,) = json.loads((tmp_path / "r.json").read_text())["time_to_target"]
    assert [s["seed"] for s in run["seeds"]] == [4, 5, 6]
    assert [s["config"]["seed"] for s in run["seeds"]] == [4, 5, 6]
    assert [s["config"]["label_smoothing"] for s in run["seeds"]] == [0.1] * 3
    assert [s["config"]["augment"] for s in run["seeds"]] == [True] * 3
    seconds = sorted(s["reached"]["seconds"] for s in run["seeds"])
    median = f"median {seconds[1]:.1f} ({seconds[0]:.1f}–{seconds[2]:.1f}) s"
    assert f"3 of 3 seeds reached 0.00% test accuracy; {median}" in out
    for seed in (4, 5, 6):
        assert cells_of(rows_of(out, str(seed))[0])[1] == "yes"


def test_several_time_to_target_runs_pair_models_targets_and_seeds_by_position(dataset, tmp_path):
    argv = ["--data-dir", str(dataset), "--time-to-99", "mlp_v2,mlp_64_32", "--target", "0,1", "--seeds", "1",
            "--epochs", "1", "--limit", "64", "--markdown", str(tmp_path / "B.md")]
    assert cli.main(["benchmark", *argv]) == 0
    page = (tmp_path / "B.md").read_text()
    assert "### 0.00%, mlp_v2" in page and "0 of 1 seeds reached 100.00% test accuracy" in page
    assert "### 100.00%, mlp_64_32" in page and "no (all epochs run)" in page


def test_time_to_target_says_so_when_the_target_is_not_reached(dataset, capsys):
    argv = ["--data-dir", str(dataset), "--time-to-99", "--epochs", "1", "--limit", "32", "--target", "0.995"]
    assert cli.main(["benchmark", *argv]) == 0
    out = capsys.readouterr().out
    assert "0 of 1 seeds reached 99.50% test accuracy." in out and "no (all epochs run)" in out


def test_time_to_target_trains_at_one_given_batch_size_and_at_the_recipe_s_beside_a_list(monkeypatch):
    asked = []
    monkeypatch.setattr(bench, "spawn", lambda spec, threads: asked.append(spec["batch_size"]) or {})
    for sizes in (["--batch-size", "256"], ["--batch-size", "32,128"], []):
        args = cli.build_parser().parse_args(["benchmark", "--time-to-99", "lenet5", *sizes])
        bench.run_time_to_target(args, 1, progress=lambda *a: None)
    assert asked == [256, None, None]  # None: the recipe's


@pytest.mark.parametrize("option, values, expected", [
    ("--epochs", ["2,5", "3", None], [2, 5, 3, 3, None, None]),
    ("--lr", ["1e-2,4e-3", "3e-3", None], [1e-2, 4e-3, 3e-3, 3e-3, None, None]),
    ("--eval-every", ["0,100", "50", None], [0, 100, 50, 50, 0, 0]),
    ("--label-smoothing", ["0.1,0", "0.05", None], [0.1, 0.0, 0.05, 0.05, None, None]),
    ("--augment", ["yes,no", "no", None], [True, False, False, False, None, None]),
])
def test_time_to_target_options_pair_with_the_models_by_position(option, values, expected, monkeypatch):
    asked, key = [], option[2:].replace("-", "_")
    monkeypatch.setattr(bench, "spawn", lambda spec, threads: asked.append((spec["model"], spec[key])) or {})
    for value in values:
        more = [option, value] if value else []
        args = cli.build_parser().parse_args(["benchmark", "--time-to-99", "fast_cnn,best", *more])
        bench.run_time_to_target(args, 1, progress=lambda *a: None)
    assert asked == list(zip(["fast_cnn", "best"] * 3, expected))  # None: the recipe's; eval-every 0: epochs' ends
    with pytest.raises(SystemExit):  # a negative count or rate, a smoothing outside [0, 1], neither yes nor no
        cli.build_parser().parse_args(["benchmark", "--time-to-99", "fast_cnn", option, "-1"])


@pytest.mark.parametrize("argv, message", [
    (["--time-to-99", "lenet5,mlp_v2,resnet", "--target", "0.99,0.995"], "pair up by position: 2 targets for 3 runs"),
    (["--time-to-99", "lenet5,best,resnet", "--epochs", "1,2"], "pair up by position: 2 epochs for 3 runs"),
    (["--time-to-99", "lenet5,best,resnet", "--lr", "1e-2,4e-3"], "pair up by position: 2 lr for 3 runs"),
    (["--time-to-99", "lenet5,best,resnet", "--eval-every", "0,9"], "2 --eval-every values for 3 runs"),
    (["--time-to-99", "lenet5,best,resnet", "--label-smoothing", "0.1,0"], "2 --label-smoothing values for 3 runs"),
    (["--time-to-99", "lenet5,best,resnet", "--augment", "yes,no"], "2 --augment values for 3 runs"),
    (["--model", "lenet5", "--augment", "yes"], "--augment sets the time-to-99 recipe"),
    (["--train", "--time-to-99", "lenet5,best", "--lr", "1e-2,4e-3"], "several rates pair up with --time-to-99"),
    (["--model", "lenet5", "--label-smoothing", "0.1"], "--label-smoothing sets the time-to-99 recipe"),
    (["--scaling", "--epochs", "2", "--schedule", "cosine"], "--epochs, --schedule set the time-to-99 recipe"),
    (["--model", "lenet5", "--limit", "100", "--batch-size", "128"], "--limit 100 is below batch size 128"),
    (["--scaling", "--limit", "100"], "--limit 100 is below batch size 512"),
    (["--json", "no/such/folder/r.json"], "the folder"),
])
def test_what_cannot_run_is_reported_before_anything_is_measured(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(bench, "spawn", lambda *a, **k: pytest.fail("a worker started"))
    assert cli.main(["benchmark", *argv]) == 2
    assert message in capsys.readouterr().err


def test_model_all_means_every_model_in_models(monkeypatch):
    from tinygrad_mnist.models import MODELS as ALL
    asked = []
    monkeypatch.setattr(bench, "run_epochs", lambda cells, *a: asked.extend(cells) or [])
    args = cli.build_parser().parse_args(["benchmark", "--no-ops", "--train", "--batch-size", "32,512"])
    args.argv = []
    bench.run(args)
    assert [(c["model"], c["batch_size"]) for c in asked] == [(m, b) for m in ALL for b in (32, 512)]
    assert "pytorch_example" in ALL and "resnet" in ALL


def test_the_markdown_page_says_which_parts_were_not_measured():
    results = dict(machine=dict(cpu="Test CPU", cores=2, python="3", numpy="2", blas="openblas", torch="2"),
                   settings=dict(threads=1, rounds=3, batch_sizes=[128], lr=1e-3, limit=None, device="cpu",
                                 warmup_steps=5, op_reps=20),
                   load_before=[0.5, 0.5, 0.5], load_after=None, command="tinygrad-mnist benchmark --no-train",
                   epochs=None, scaling=None, ops=dict(rows=[dict(op="relu", shapes="(128,120)", engine_fwd_ms=0.02,
                                                                  engine_bwd_ms=0.03)], torch_error=NO_TORCH),
                   forms=None, profile=None, time_to_target=None)
    page = render_markdown(results)
    epoch_section = page.split("## One training epoch")[1].split("##")[0]
    assert "Not measured by the command above." in epoch_section
    assert "- CPU: Test CPU; 2 cores (2 usable)" in page and "after: n/a" in page
    assert NO_TORCH in rows_of(page, "relu")[0]


def test_the_profile_runs_every_step_it_divides_by_even_when_the_limit_leaves_fewer(dataset, monkeypatch):
    from tinygrad_mnist.benchmark import workers
    calls = []
    real = workers._training

    class Counting:
        def __init__(self, step):
            self.step, self.optimizer = step, step.optimizer

        def __call__(self, xb, yb):
            calls.append(len(xb))
            return self.step(xb, yb)

    def counting(spec):
        step, torch, x, y, batches = real(spec)
        return Counting(step), torch, x, y, batches
    monkeypatch.setattr(workers, "_training", counting)
    spec = dict(framework="engine", model="lenet5", batch_size=32, profile_steps=7, warmup_steps=1, device="cpu",
                seed=0, threads=1, lr=1e-3, limit=96, data_dir=str(dataset))
    result = workers.profile_worker(spec)
    # 96 images are 3 batches: the profile goes round again; then one more step records the matrix products
    assert result["steps"] == 7 and len(calls) == 1 + 7 + 1
    assert result["products"]["gflop"] == pytest.approx(lenet5_gflop(32)) and result["products"]["ms"] > 0


def test_the_profile_takes_the_models_it_is_given_each_at_every_batch_size(dataset):
    args = cli.build_parser().parse_args(["benchmark", "--data-dir", str(dataset), "--no-train", "--no-ops",
                                          "--profile", "cnn_bn,mlp_v1", "--profile-steps", "2", "--limit", "96",
                                          "--batch-size", "16,32", "--warmup-steps", "1"])
    args.argv = []
    results = bench.run(args, progress=lambda *a: None)
    assert [(p["model"], p["batch_size"]) for p in results["profile"]] == [
        ("cnn_bn", 16), ("cnn_bn", 32), ("mlp_v1", 16), ("mlp_v1", 32)]
    cnn_bn = dict(results["profile"][1]["engine"]["rows"])
    assert cnn_bn["batchnorm (32,16,24,24) forward"] > 0 and cnn_bn["batchnorm (32,16,24,24) backward"] > 0
    assert not any(name.startswith("conv2d") for name, _ in results["profile"][2]["engine"]["rows"])
    page = render_markdown(results)
    assert "cnn_bn, mlp_v1: 2 training steps" in page and "cnn_bn, batch 32, engine:" in page
    assert "mlp_v1, batch 16, engine:" in page
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["benchmark", "--profile", "lenet6"])


def test_a_profile_only_run_names_the_pytorch_it_profiled(dataset):
    pytest.importorskip("torch")
    import torch
    args = cli.build_parser().parse_args(["benchmark", "--data-dir", str(dataset), "--no-train", "--no-ops",
                                          "--profile", "--profile-steps", "2", "--limit", "96", "--batch-size", "32",
                                          "--warmup-steps", "1"])
    args.argv = []
    assert bench.run(args, progress=lambda *a: None)["machine"]["torch"] == torch.__version__


def test_time_to_99_without_a_model_times_sprint_cnn_the_recipe_made_for_it():
    assert cli.build_parser().parse_args(["benchmark", "--time-to-99"]).time_to_99 == ["sprint_cnn"]


def test_the_commit_stamp_names_the_uncommitted_files(tmp_path, monkeypatch):
    """A table measured beside regenerated docs says which files were uncommitted, so that it is not
    read as measured on changed code; a clean tree gives the bare hash."""
    import subprocess
    from tinygrad_mnist.benchmark import measure

    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *args: subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,  # noqa: E731
                                       text=True).stdout.strip()
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "start")
    monkeypatch.setattr(measure, "__file__", str(repo / "measure.py"))
    head = git("rev-parse", "--short", "HEAD")
    assert measure.commit_stamp() == head
    for name in ("a.md", "b.json", "c.png", "d.txt", "e.txt"):
        (repo / name).write_text("x")
    assert measure.commit_stamp() == f"{head} (with uncommitted changes: a.md, b.json, c.png and 2 more)"
    (tmp_path / "not_a_repo").mkdir()
    monkeypatch.setattr(measure, "__file__", str(tmp_path / "not_a_repo" / "measure.py"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert measure.commit_stamp() == "n/a"


def test_the_machine_section_names_the_caches_the_vector_extension_and_the_blas_kernels():
    """Tables from different machines differ by more than the engine: the page says what the CPU's
    caches and vector units were and which kernels the BLAS picked, where the system tells."""
    from tinygrad_mnist.benchmark import measure

    info = measure.machine_info()
    assert {"cpu", "cores", "numpy", "blas", "date", "commit"} <= set(info)
    if sys.platform.startswith("linux"):
        assert info.get("caches", "").startswith("caches L")
        assert info.get("simd") in ("AVX-512", "AVX2", "AVX", "SSE4.2", None)
    results = dict(machine=dict(info, torch="n/a"), settings=dict(threads=1, lr=1e-3, device="cpu", warmup_steps=5),
                   command="tinygrad-mnist benchmark", load_before=None, load_after=None, epochs=None, scaling=None,
                   ops=None, forms=None, profile=None, time_to_target=None)
    page = render_markdown(results).splitlines()
    line = next(line for line in page if line.startswith("- CPU:"))
    assert info["cpu"] in line and (info.get("caches") or "") in line
    python = next(line for line in page if line.startswith("- Python"))
    assert info["bytecode_cache"] == ("off (PYTHONDONTWRITEBYTECODE)" if sys.dont_write_bytecode else "on")
    assert f"(bytecode cache {info['bytecode_cache']})" in python
