import html
import json
import re
import sys

import numpy as np
import pytest
from run_fixtures import STEPS_PER_EPOCH, make_fake_run

from tinygrad_mnist import plots
from tinygrad_mnist.checkpoint import load_checkpoint, save_checkpoint
from tinygrad_mnist.report import write_report

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = {"curves", "lr", "confusion", "samples_correct", "samples_wrong", "filters",
             "feature_maps", "grad_flow"}
EMBEDDED_PNG = '<img src="data:image/png;base64,'
MODEL_NEEDING_ESCAPES = '<b>le&net"5</b>'


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        width, height = image.size
        image.verify()
    assert 300 <= width <= 4000 and 100 <= height <= 4000, (path, width, height)


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("runs") / "conv", epochs=4)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("runs") / "mlp", model="mlp", with_conv=False, seed=1)


@pytest.fixture(scope="module")
def conv_plots(conv_run):
    return plots.plot_run(conv_run)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    run = make_fake_run(tmp_path_factory.mktemp("runs") / "reported", model=MODEL_NEEDING_ESCAPES)
    return run, write_report(run)


def test_plot_run_writes_every_plot_of_a_conv_run_as_png(conv_run, conv_plots):
    assert set(conv_plots) == ALL_PLOTS
    for name, path in conv_plots.items():
        assert path == conv_run / "plots" / f"{name}.png"
        assert_png(path)


def test_plot_run_skips_filters_and_feature_maps_for_a_model_without_convolutions(mlp_run, tmp_path):
    written = plots.plot_run(mlp_run, tmp_path)
    assert set(written) == ALL_PLOTS - {"filters", "feature_maps"}
    for path in written.values():
        assert_png(path)


def test_curves_of_a_run_without_validation_split(tmp_path):
    run = make_fake_run(tmp_path / "run", with_val=False)
    assert np.isnan(plots.read_csv_columns(run / "metrics.csv")["val_acc"]).all()
    assert_png(plots.plot_curves(run, tmp_path / "curves.png"))
    assert_png(plots.plot_compare([run], tmp_path / "compare.png"))


def test_plot_run_skips_plots_whose_input_files_are_missing(tmp_path):
    run = make_fake_run(tmp_path / "run")
    for name in ("results.json", "samples.npz", "feature_maps.npz", "best.npz", "last.npz"):
        (run / name).unlink()
    assert set(plots.plot_run(run)) == {"curves", "lr", "grad_flow"}


def test_plot_run_of_a_run_that_has_not_finished_an_epoch(tmp_path):
    run = make_fake_run(tmp_path / "run")
    (run / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n")
    (run / "grad_norms.csv").write_text("")
    (run / "lr.csv").write_text("step,epochs,lr\n")
    assert not {"curves", "lr", "grad_flow"} & set(plots.plot_run(run))


def test_half_written_last_line_of_metrics_is_ignored(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
                    "1,0.5,0.8,,,0.1,12.0\n2,0.3")
    columns = plots.read_csv_columns(path)
    assert columns["epoch"].tolist() == [1.0]
    assert np.isnan(columns["val_loss"]).all()


def test_the_learning_rate_is_drawn_for_every_step(conv_run):
    epochs, lr, per_step = plots.lr_series(conv_run)
    assert per_step and len(lr) == len(epochs) == 4 * STEPS_PER_EPOCH
    assert epochs[-1] == 4 and lr.argmax() not in (0, len(lr) - 1)  # a one-cycle rises, then falls


def test_a_run_folder_without_lr_csv_draws_each_epoch_s_rate(tmp_path):
    run = make_fake_run(tmp_path / "run", epochs=3)
    (run / "lr.csv").unlink()
    epochs, lr, per_step = plots.lr_series(run)
    assert not per_step and epochs.tolist() == [1, 2, 3] and len(lr) == 3
    assert_png(plots.plot_lr(run, tmp_path / "lr.png"))


@pytest.mark.parametrize("folder,model,label", [("lenet5", "lenet5", "lenet5"),
                                                ("lenet5-20260101-120000", "lenet5", "lenet5-20260101-120000"),
                                                ("run", "cnn_bn", "run (cnn_bn)")])
def test_a_plot_title_names_the_model_once(tmp_path, folder, model, label):
    assert plots.run_label(make_fake_run(tmp_path / folder, model=model)) == label


def test_no_wrong_samples_draws_a_note_instead_of_a_grid(tmp_path):
    run = make_fake_run(tmp_path / "run", n_wrong=0)
    assert_png(plots.plot_samples(run, tmp_path / "wrong.png", kind="wrong"))


def test_long_class_names_fit_in_confusion_and_sample_plots(tmp_path):
    run = make_fake_run(tmp_path / "run", dataset="fashion")
    assert_png(plots.plot_confusion(run, tmp_path / "confusion.png"))
    assert_png(plots.plot_samples(run, tmp_path / "wrong.png", kind="wrong"))


def test_model_state_holds_only_model_arrays_in_file_order(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "best.npz", **{"optim/conv1.weight.momentum": rng.random((3, 1, 3, 3)),
                                       "model/conv1.weight": rng.random((4, 1, 5, 5)),
                                       "model/conv1.bias": rng.random(4)},
             __meta__=np.array("{}"), __format_version__=np.array(1))
    state = plots.load_model_state(tmp_path)
    assert list(state) == ["conv1.weight", "conv1.bias"]
    assert state["conv1.weight"].shape == (4, 1, 5, 5)
    assert_png(plots.plot_filters(tmp_path, tmp_path / "filters.png"))


@pytest.mark.parametrize("weights", ["last", "best"])
def test_the_plots_show_the_weights_the_results_describe(tmp_path, weights):
    run = make_fake_run(tmp_path / "run")
    best = load_checkpoint(run / "best.npz")
    best["model"]["conv1.weight"] = np.full_like(best["model"]["conv1.weight"], 7.0)
    save_checkpoint(run / "best.npz", best)
    results = plots.read_json(run, "results.json")
    (run / "results.json").write_text(json.dumps(dict(results, weights=weights)))
    assert (plots.load_model_state(run)["conv1.weight"] == 7.0).all() == (weights == "best")


def test_filters_are_skipped_for_a_model_without_convolutions(mlp_run, tmp_path):
    assert plots.plot_filters(mlp_run, tmp_path / "filters.png") is None
    assert not (tmp_path / "filters.png").exists()


def test_compare_overlays_two_runs(conv_run, mlp_run, tmp_path):
    assert_png(plots.plot_compare([conv_run, mlp_run], tmp_path / "compare.png"))


def test_plots_without_matplotlib_say_how_to_install_it(conv_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"tinygrad_mnist\[plots\]"):
        plots.plot_curves(conv_run, tmp_path / "curves.png")


def test_report_defaults_to_the_run_folder(report_run):
    run, page_path = report_run
    assert page_path == run / "report.html"


def test_report_embeds_every_plot(report_run):
    run, page_path = report_run
    assert page_path.read_text().count(EMBEDDED_PNG) == len(ALL_PLOTS)


def test_report_shows_test_accuracy(report_run):
    run, page_path = report_run
    accuracy = plots.read_json(run, "results.json")["test_accuracy"]
    assert f"{100 * accuracy:.2f}%" in page_path.read_text()


def test_report_escapes_strings_from_the_run_folder(report_run):
    run, page_path = report_run
    page = page_path.read_text()
    assert html.escape(MODEL_NEEDING_ESCAPES) in page
    assert MODEL_NEEDING_ESCAPES not in page


def test_report_loads_nothing_from_outside_the_page(report_run):
    page = report_run[1].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page


def test_report_of_several_runs_compares_them(conv_run, mlp_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page_path = write_report([conv_run, mlp_run])
    assert page_path == conv_run / "compare.html"  # with the runs, not in the current folder
    assert list(tmp_path.iterdir()) == []
    page = page_path.read_text()
    assert page.count(EMBEDDED_PNG) == 1 + len(ALL_PLOTS) + len(ALL_PLOTS - {"filters", "feature_maps"})
    for run in (conv_run, mlp_run):
        accuracy = plots.read_json(run, "results.json")["test_accuracy"]
        assert f"{100 * accuracy:.2f}%" in page


def test_report_notes_missing_pieces_instead_of_failing(tmp_path, monkeypatch):
    run = make_fake_run(tmp_path / "run")
    (run / "results.json").unlink()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = write_report(run, tmp_path / "out" / "page.html").read_text()
    assert "results.json is missing" in page
    assert "pip install" in page
    assert EMBEDDED_PNG not in page
    assert "<td>0.1</td>" in page  # the metrics table is still there


def write_real_samples(run, n=200, seed=0):
    """samples.npz as the Trainer writes it, from random predictions over n test digits."""
    from tinygrad_mnist.training import write_samples
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(10), n).astype(np.float32)
    labels = rng.integers(0, 10, n)
    write_samples(run / "samples.npz", rng.random((n, 28, 28), dtype=np.float32), labels, probs.argmax(1), probs)
    return labels, probs


def test_samples_keep_the_most_confident_mistakes_first_with_their_test_index(tmp_path):
    labels, probs = write_real_samples(tmp_path)
    preds = probs.argmax(1)
    wrong = np.flatnonzero(preds != labels)
    with np.load(tmp_path / "samples.npz") as npz:
        assert int(npz["wrong_total"]) == len(wrong)
        expected = wrong[np.argsort(-probs[wrong, preds[wrong]], kind="stable")][:25]
        np.testing.assert_array_equal(npz["wrong_index"], expected)
        np.testing.assert_array_equal(npz["wrong_probs"], probs[expected, preds[expected]])
        assert np.all(np.diff(npz["wrong_probs"]) <= 0)
        np.testing.assert_array_equal(npz["correct_index"], np.flatnonzero(preds == labels)[:25])


def test_report_lists_the_ten_most_confident_mistakes_and_the_weights_it_tested(tmp_path):
    run = make_fake_run(tmp_path / "run")
    labels, probs = write_real_samples(run)
    results = json.loads((run / "results.json").read_text())
    results.update(weights="last", averaged="ema 0.999")
    (run / "results.json").write_text(json.dumps(results))
    page = write_report(run).read_text()
    table = page.split("The ten most confident mistakes")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td><td>(\w+)</td><td>([\d.]+)</td></tr>", table)
    assert len(rows) == 10
    preds = probs.argmax(1)
    for index, true, pred, prob in rows:
        assert (int(true), int(pred)) == (labels[int(index)], preds[int(index)])
        assert float(prob) == pytest.approx(probs[int(index)].max(), abs=1e-4)
    assert [float(r[3]) for r in rows] == sorted((float(r[3]) for r in rows), reverse=True)
    assert "final, moving average, decay 0.999" in page


def test_report_of_a_run_folder_from_before_the_ranking_says_so(report_run):
    _, page = report_run
    assert "predates the ranking of mistakes" in page.read_text()
