"""One self-contained HTML page about one run, or comparing several: the plots are embedded as
data URIs and the CSS is inline, so the page is a single file that opens anywhere, offline.

Everything comes from the run folders (docs/RUN_FOLDER.md); a missing file leaves a short note
where its section would be.
"""

import base64
import html
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .files import atomic_write
from .plots import plot_compare, plot_run, read_csv_columns, read_json, run_label
from .tables import table

PLOT_TITLES = {
    "curves": "Loss and accuracy",
    "lr": "Learning rate",
    "confusion": "Confusion matrix (test set)",
    "samples_correct": "Correctly classified test images",
    "samples_wrong": "Misclassified test images, the most confident first",
    "filters": "First convolution's filters",
    "feature_maps": "Feature maps",
    "grad_flow": "Gradient norms per parameter",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1200px; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
section.run { border-top: 1px solid #ddd; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .92rem; }
th, td { border: 1px solid #ddd; padding: .2rem .6rem; text-align: right; }
th { background: #f3f3f3; }
.text { text-align: left; }
tr.best td { background: #fff3c4; }
img { max-width: 100%; height: auto; display: block; margin: .3rem 0 1.5rem; }
.note { color: #777; font-style: italic; }
"""


def write_report(run_dirs, out_path=None):
    """Write the report for one run folder or a list of them and return its path.

    The default path is <run_dir>/report.html for one run and <first run_dir>/compare.html for
    several: the page goes with the runs it shows, never into the current folder.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    if not run_dirs:
        raise ValueError("write_report needs at least one run folder")
    if out_path is None:
        out_path = run_dirs[0] / ("report.html" if len(run_dirs) == 1 else "compare.html")

    # The plots are drawn into a scratch folder: the page carries them, the run folders stay as they were.
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if len(run_dirs) == 1:
            title = run_label(run_dirs[0])
            body = [f"<h1>{_esc(title)}</h1>", *_run_body(run_dirs[0], scratch, level=2)]
        else:
            title = f"Comparison of {len(run_dirs)} runs"
            body = [f"<h1>{_esc(title)}</h1>", _comparison_table(run_dirs),
                    *_compare_plot(run_dirs, scratch / "compare.png")]
            for k, run_dir in enumerate(run_dirs):
                body += [f'<section class="run" id="run-{k}">',
                         f"<h2>{_esc(run_label(run_dir))}</h2>",
                         *_run_body(run_dir, scratch / f"run-{k}", level=3), "</section>"]

    page = "\n".join(['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>{_esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
                      *body, "</body>", "</html>", ""])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path, "w") as f:
        f.write(page)
    return out_path


def _run_body(run_dir, plot_dir, level):
    h = f"h{level}"
    config, results = _json(run_dir, "config.json"), _json(run_dir, "results.json")
    parts = [f"<{h}>Configuration</{h}>"]
    if config is None:
        parts.append(_note("config.json is missing."))
    else:
        parts.append(_table(["option", "value"], [[key, _config_value(value)] for key, value in config.items()],
                            text_columns=2))
    parts.append(f"<{h}>Test results</{h}>")
    if results is None:
        parts.append(_note("results.json is missing: the run has not finished."))
    else:
        parts += [_results_table(results), _per_class_table(results),
                  f"<{h}>The ten most confident mistakes</{h}>", _mistakes_table(run_dir, results)]
    parts.append(f"<{h}>Metrics per epoch</{h}>")
    parts.append(_metrics_table(run_dir, (results or {}).get("best_epoch")))
    parts.append(f"<{h}>Plots</{h}>")
    try:
        plots = plot_run(run_dir, plot_dir)
    except ImportError as error:
        return parts + [_note(f"No plots: {error}.")]
    if not plots:
        parts.append(_note("The run folder has nothing to plot yet."))
    for name, path in plots.items():
        parts += [f"<h{level + 1}>{_esc(PLOT_TITLES.get(name, name))}</h{level + 1}>",
                  _img(path, PLOT_TITLES.get(name, name))]
    return parts


def _comparison_table(run_dirs):
    rows = []
    for k, run_dir in enumerate(run_dirs):
        config = _json(run_dir, "config.json") or {}
        results = _json(run_dir, "results.json") or {}
        epochs = results.get("epochs_run")
        if epochs is None and (run_dir / "metrics.csv").exists():
            epochs = len(read_csv_columns(run_dir / "metrics.csv").get("epoch", []))
        rows.append([_Html(f'<a href="#run-{k}">{_esc(run_dir.resolve().name)}</a>'),
                     config.get("model", "—"), _fmt(epochs, "d"), _pct(results.get("test_accuracy")),
                     _fmt(results.get("macro_f1"), ".4f"), _fmt(results.get("train_seconds"), ".1f"),
                     _fmt(results.get("best_epoch"), "d")])
    return _table(["run", "model", "epochs", "test accuracy", "macro F1", "train seconds", "best epoch"],
                  rows, text_columns=2)


def _compare_plot(run_dirs, path):
    try:
        written = plot_compare(run_dirs, path)
    except ImportError as error:
        return [_note(f"No comparison plot: {error}.")]
    if written is None:
        return [_note("No run has metrics.csv rows to compare.")]
    return ["<h2>Learning curves</h2>", _img(written, "learning curves of all runs")]


def _results_table(results):
    rows = [["test accuracy", _pct(results.get("test_accuracy"))],
            ["test loss", _fmt(results.get("test_loss"), ".4f")],
            ["macro precision", _fmt(results.get("macro_precision"), ".4f")],
            ["macro recall", _fmt(results.get("macro_recall"), ".4f")],
            ["macro F1", _fmt(results.get("macro_f1"), ".4f")],
            ["epochs run", _fmt(results.get("epochs_run"), "d")],
            ["best epoch", _fmt(results.get("best_epoch"), "d")],
            ["train time", _fmt(results.get("train_seconds"), ".1f") + " s"],
            ["weights tested", _weights(results)]]
    return _table(["metric", "value"], rows, text_columns=1)


def _weights(results):
    """Which weights the test scored: the final or the best epoch's, and their moving average if any."""
    kind = {"last": "final", "best": "best epoch by validation loss"}.get(results.get("weights"), "—")
    averaged = results.get("averaged")
    return f"{kind}, {averaged.replace('ema', 'moving average, decay')}" if averaged else kind


def _mistakes_table(run_dir, results, count=10):
    """The test digits the model got wrong with the highest probability, from samples.npz."""
    path = Path(run_dir) / "samples.npz"
    if not path.exists():
        return _note("samples.npz is missing.")
    with np.load(path, allow_pickle=False) as npz:
        if "wrong_index" not in npz.files:
            return _note("This run folder predates the ranking of mistakes by confidence.")
        fields = [npz[f"wrong_{name}"][:count] for name in ("index", "labels", "preds", "probs")]
    if not len(fields[0]):
        return _note("No test digit was misclassified.")
    names = (results or {}).get("class_names") or []
    name = lambda k: names[k] if 0 <= k < len(names) else str(k)
    rows = [[_fmt(int(i), "d"), name(int(t)), name(int(p)), _fmt(float(q), ".4f")] for i, t, p, q in zip(*fields)]
    return _table(["test index", "true", "predicted", "probability"], rows, text_columns=0)


def _per_class_table(results):
    per_class = results.get("per_class")
    if not per_class:
        return _note("results.json has no per-class metrics.")
    names = results.get("class_names") or []
    rows = []
    for entry in per_class:
        label = entry.get("class")
        if isinstance(label, int) and 0 <= label < len(names):
            label = names[label]
        rows.append([label, _fmt(entry.get("precision"), ".4f"), _fmt(entry.get("recall"), ".4f"),
                     _fmt(entry.get("f1"), ".4f"), _fmt(entry.get("support"), "d")])
    return _table(["class", "precision", "recall", "F1", "support"], rows, text_columns=1)


def _metrics_table(run_dir, best_epoch):
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return _note("metrics.csv is missing.")
    columns = read_csv_columns(path)
    if not columns or not len(columns["epoch"]):
        return _note("metrics.csv has no epochs yet.")
    # A run without a validation split leaves the val_* columns empty: leave them out.
    names = [name for name, values in columns.items() if not all(math.isnan(v) for v in values)]
    rows, marked = [], []
    for i, epoch in enumerate(columns["epoch"]):
        rows.append([_metric_cell(name, columns[name][i]) for name in names])
        marked.append(best_epoch is not None and epoch == best_epoch)
    return _table(names, rows, marked=marked)


def _metric_cell(name, value):
    if math.isnan(value):
        return ""
    if name in ("epoch", "step"):
        return f"{value:.0f}"
    if name.endswith("_acc"):
        return _pct(value)
    if name.endswith("_loss"):
        return f"{value:.4f}"
    if name == "seconds":
        return f"{value:.1f}"
    return f"{value:.3g}"


class _Html(str):
    """A table cell already written as HTML, which _table must not escape again."""


def _table(header, rows, text_columns=0, marked=None):
    """An HTML table; the first `text_columns` columns are left-aligned, the rest are numbers.
    `marked[i]` highlights row i."""
    def cell(tag, k, value):
        align = ' class="text"' if k < text_columns else ""
        return f"<{tag}{align}>{value if isinstance(value, _Html) else _esc(value)}</{tag}>"

    lines = ["<table>", "<tr>" + "".join(cell("th", k, name) for k, name in enumerate(header)) + "</tr>"]
    for i, row in enumerate(rows):
        css = ' class="best"' if marked and marked[i] else ""
        lines.append(f"<tr{css}>" + "".join(cell("td", k, value) for k, value in enumerate(row)) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _img(path, alt):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _json(run_dir, name):
    return read_json(run_dir, name) if (Path(run_dir) / name).exists() else None


def _config_value(value):
    return value if isinstance(value, str) else json.dumps(value)


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(int(value) if spec == "d" else value, spec)


def _pct(fraction):
    return "—" if fraction is None else f"{100 * fraction:.2f}%"


def _note(text):
    return f'<p class="note">{_esc(text)}</p>'


def _esc(value):
    return html.escape(str(value), quote=True)


def results_markdown(run_dirs, reference=None):
    """A Markdown table of finished runs: accuracy, macro F1, epochs, training time and the command
    that made each (from config.json). `reference` maps a run folder's name to extra leading cells."""
    reference = reference or {}
    extra = len(next(iter(reference.values()), ()))
    header = ["run", *(["projects' figure", "must reach"][:extra]), "test accuracy", "macro F1", "epochs",
              "training time", "command"]
    rows = []
    for run_dir in map(Path, run_dirs):
        results, config = _json(run_dir, "results.json"), _json(run_dir, "config.json") or {}
        if results is None:
            continue
        command = config.get("command")
        rows.append([run_dir.name, *reference.get(run_dir.name, ("",) * extra),
                     f"{100 * results['test_accuracy']:.2f}%", f"{results['macro_f1']:.4f}", str(results["epochs_run"]),
                     f"{results['train_seconds']:.0f} s", f"`{command}`" if command else "not recorded"])
    return table(header, rows, pad=False) + "\n"
