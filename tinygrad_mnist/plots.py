"""Plots of a training run, drawn from the files in its run folder (docs/RUN_FOLDER.md).

Each `plot_*` function reads the run folder, writes one PNG and returns its path, or None when the
run has nothing to draw (no convolution to show, an empty metrics.csv). matplotlib is imported only
when a figure is drawn, and only its object API is used: no pyplot, so no global figure state and
no change to the backend a user may have chosen.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np

from .checkpoint import inference_weights, load_checkpoint, run_weights
from .files import atomic_write

DPI = 120
# Channels shown per row, in feature maps and in the filters of a multi-channel convolution.
MAX_CHANNELS = 8


def read_csv_columns(path):
    """The columns of a run's CSV file as float arrays, by header name; an empty cell is NaN."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header = rows[0]
    # metrics.csv grows while a run trains, so a reader may catch its last line half-written.
    body = [row for row in rows[1:] if len(row) == len(header)]
    return {name: np.array([float(row[i]) if row[i] else np.nan for row in body])
            for i, name in enumerate(header)}


def read_json(run_dir, name):
    return json.loads((Path(run_dir) / name).read_text())


def load_model_state(run_dir):
    """The model's arrays, by state_dict name in file order, from the checkpoint that holds the weights
    the run's results describe (checkpoint.run_weights); None when the run has no checkpoint."""
    path = run_weights(run_dir)
    return None if path is None else inference_weights(load_checkpoint(path))


def run_label(run_dir):
    """The run folder's name, and the model from config.json unless the name says it already."""
    name = Path(run_dir).resolve().name
    model = read_json(run_dir, "config.json").get("model") if (Path(run_dir) / "config.json").exists() else None
    return f"{name} ({model})" if model and model not in name else name


def plot_curves(run_dir, path):
    """Loss and accuracy per epoch, train and validation, side by side."""
    metrics = read_csv_columns(Path(run_dir) / "metrics.csv")
    if not metrics or not len(metrics["epoch"]):
        return None
    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, metric, scale, ylabel in ((loss_ax, "loss", 1, "cross-entropy loss"),
                                      (acc_ax, "acc", 100, "accuracy (%)")):
        for split, label, color in (("train", "train", "C0"), ("val", "validation", "C1")):
            values = metrics.get(f"{split}_{metric}")
            if values is not None and not np.isnan(values).all():
                ax.plot(metrics["epoch"], values * scale, color=color, label=label,
                        **_markers(metrics["epoch"]))
        _epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.legend()
    fig.suptitle(_text(run_label(run_dir)))
    return _save(fig, path)


def lr_series(run_dir):
    """(epochs trained, learning rate, per_step): every step's rate from lr.csv, against the epochs
    trained at its end; from a run folder older than lr.csv, each epoch's last rate (metrics.csv)."""
    per_step = (Path(run_dir) / "lr.csv").exists()
    columns = read_csv_columns(Path(run_dir) / ("lr.csv" if per_step else "metrics.csv"))
    return columns.get("epochs" if per_step else "epoch"), columns.get("lr"), per_step


def plot_lr(run_dir, path):
    """The learning rate over training (lr_series); log scale when it spans more than 10x."""
    x, lr, per_step = lr_series(run_dir)
    if lr is None or not len(lr) or np.isnan(lr).all():
        return None
    fig = _figure(6, 3.5)
    ax = fig.subplots()
    ax.plot(x, lr, color="C2", **({} if per_step else _markers(x)))
    known = lr[~np.isnan(lr)]
    if known.min() > 0 and known.max() / known.min() > 10:
        ax.set_yscale("log")
    _epoch_axis(ax)
    ax.set_ylabel("learning rate")
    ax.set_title(_text(run_label(run_dir)))
    return _save(fig, path)


def plot_confusion(run_dir, path):
    """The test confusion matrix as counts and normalised by row (so the diagonal is recall)."""
    results = read_json(run_dir, "results.json")
    counts = np.array(results["confusion_matrix"], dtype=float)
    n = len(counts)
    names = results.get("class_names") or [str(k) for k in range(n)]
    totals = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(5.0, 0.5 * n + 1.5)
    fig = _figure(2 * side + 1.5, side)
    for ax, values, title, fmt in zip(fig.subplots(1, 2), (counts, recall),
                                      ("counts", "normalised by true class"),
                                      (lambda v: f"{v:.0f}", lambda v: f"{v:.2f}" if v else "0")):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, shrink=0.8)
        dark = values.max() / 2
        for i, j in np.ndindex(values.shape):
            ax.text(j, i, fmt(values[i, j]), ha="center", va="center",
                    fontsize=8 if n <= 10 else 6, color="white" if values[i, j] > dark else "black")
        labels = [_text(name) for name in names]
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_yticklabels(labels)
        if max(len(name) for name in names) > 2:
            ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
        else:
            ax.set_xticklabels(labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    fig.suptitle(_text(f"{run_label(run_dir)}: test accuracy "
                       f"{100 * counts.trace() / max(counts.sum(), 1):.2f}%"))
    return _save(fig, path)


def plot_samples(run_dir, path, kind="correct", max_images=25):
    """A grid of test digits the model got right (kind="correct"), or wrong (kind="wrong": the ones it
    was most confident of first, in run folders that store them so)."""
    if kind not in ("correct", "wrong"):
        raise ValueError(f"kind must be 'correct' or 'wrong', not {kind!r}")
    with np.load(Path(run_dir) / "samples.npz", allow_pickle=False) as npz:
        arrays = {field: npz[f"{kind}_{field}"] if f"{kind}_{field}" in npz.files else np.zeros(0)
                  for field in ("images", "labels", "preds", "probs")}
        total = int(npz[f"{kind}_total"]) if f"{kind}_total" in npz.files else len(arrays["images"])
        by_confidence = kind == "wrong" and "wrong_order" in npz.files and str(npz["wrong_order"]) == "confidence"
    has_results = (Path(run_dir) / "results.json").exists()
    names = read_json(run_dir, "results.json").get("class_names") if has_results else None
    count = min(max_images, len(arrays["images"]))
    heading = "correctly classified test images" if kind == "correct" else "misclassified test images"
    if count == 0:
        fig = _figure(6, 1.5)
        ax = fig.subplots()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, f"no {heading} in samples.npz", ha="center", va="center", fontsize=12)
        return _save(fig, path)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig = _figure(max(4.0, 1.7 * cols), 1.9 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, ax in enumerate(axes.flat[:count]):
        true, pred = _class_name(names, arrays["labels"][k]), _class_name(names, arrays["preds"][k])
        title = f"true {true} · pred {pred} ({arrays['probs'][k]:.2f})"
        if len(title) > 24:
            title = title.replace(" · ", "\n")
        ax.imshow(arrays["images"][k], cmap="gray", vmin=0, vmax=1)
        ax.set_title(_text(title), fontsize=8, color="black" if kind == "correct" else "firebrick")
    which = "most confident" if by_confidence else "first"
    fig.suptitle(f"{heading} ({which} {count} of {total:,})")
    return _save(fig, path)


def plot_filters(run_dir, path):
    """The first convolution's weights, one small image per filter (and per input channel when
    there are several), on one symmetric diverging scale so that signs and magnitudes compare."""
    state = load_model_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint (last.npz or best.npz) in {run_dir}")
    name, weight = next(((k, v) for k, v in state.items() if v.ndim == 4), (None, None))
    if weight is None:
        return None
    filters, channels, kh, kw = weight.shape
    if channels == 1:
        shown = weight[:64, 0]
        cols = math.ceil(math.sqrt(len(shown)))
    else:
        # One column per filter, one row per input channel: a wide grid stays readable, a tall one does not.
        shown = weight[:12, :MAX_CHANNELS].transpose(1, 0, 2, 3)
        cols = shown.shape[1]
    tiles = shown.reshape(-1, kh, kw)
    rows = math.ceil(len(tiles) / cols)
    limit = float(np.abs(tiles).max()) or 1.0
    fig = _figure(max(4.5, 0.9 * cols + 1.2), 0.9 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, tile in zip(axes.flat, tiles):
        image = ax.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=axes, shrink=0.8)
    shown_filters = len(shown) if channels == 1 else shown.shape[1]
    fig.suptitle(_text(f"{name}: {filters} filters of {channels}×{kh}×{kw}"
                       + (f", first {shown_filters} shown" if shown_filters < filters else "")
                       + ("; rows are input channels" if channels > 1 else "")), fontsize=10)
    return _save(fig, path)


def plot_feature_maps(run_dir, path):
    """The input image, then the first channels of each layer's output, one row per layer."""
    with np.load(Path(run_dir) / "feature_maps.npz", allow_pickle=False) as npz:
        image = npz["input"]
        layers = [(key, npz[key]) for key in npz.files if key != "input"]
    layers = [(key, maps[None] if maps.ndim == 2 else maps) for key, maps in layers
              if maps.ndim in (2, 3)]
    cols = max([1] + [min(MAX_CHANNELS, len(maps)) for _, maps in layers])
    fig = _figure(1.2 * cols + 1.6, 1.2 * (1 + len(layers)) + 0.4)
    axes = fig.subplots(1 + len(layers), cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[0, 1:]:
        ax.set_visible(False)
    axes[0, 0].imshow(image, cmap="gray")
    _row_label(axes[0, 0], f"input\n{'×'.join(map(str, image.shape))}")
    for row, (key, maps) in zip(axes[1:], layers):
        for ax, channel in zip(row, maps[:MAX_CHANNELS]):
            ax.imshow(channel, cmap="viridis")
        for ax in row[len(maps):]:
            ax.set_visible(False)
        _row_label(row[0], f"{key}\n{'×'.join(map(str, maps.shape))}")
    fig.suptitle(f"feature maps of one test image (first {MAX_CHANNELS} channels, "
                 "each on its own scale)", fontsize=10)
    return _save(fig, path)


def plot_grad_flow(run_dir, path):
    """Each parameter's mean gradient norm per epoch, on a log scale; biases dashed."""
    norms = read_csv_columns(Path(run_dir) / "grad_norms.csv")
    names = [name for name in norms if name not in ("epoch", "step")]
    if not names or not len(norms["epoch"]):
        return None
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    for k, name in enumerate(names):
        values = np.where(norms[name] > 0, norms[name], np.nan)
        ax.plot(norms["epoch"], values, color=f"C{k % 10}", label=_text(name),
                linestyle="--" if name.endswith("bias") else "-", **_markers(norms["epoch"]))
    ax.set_yscale("log")
    _epoch_axis(ax)
    ax.set_ylabel("mean gradient L2 norm")
    ax.set_title(_text(run_label(run_dir)))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="parameter",
              ncol=1 if len(names) <= 16 else 2)
    return _save(fig, path)


# (name, input files of which any one will do, function); plot_run and the report use this order.
PLOTS = [
    ("curves", ("metrics.csv",), plot_curves),
    ("lr", ("lr.csv", "metrics.csv"), plot_lr),
    ("confusion", ("results.json",), plot_confusion),
    ("samples_correct", ("samples.npz",), lambda run, path: plot_samples(run, path, "correct")),
    ("samples_wrong", ("samples.npz",), lambda run, path: plot_samples(run, path, "wrong")),
    ("filters", ("best.npz", "last.npz"), plot_filters),
    ("feature_maps", ("feature_maps.npz",), plot_feature_maps),
    ("grad_flow", ("grad_norms.csv",), plot_grad_flow),
]


def plot_run(run_dir, out_dir=None):
    """Write every plot the run folder has the files for into out_dir (default run_dir/plots);
    return {name: path} for those written."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    written = {}
    for name, inputs, plot in PLOTS:
        if any((run_dir / file).exists() for file in inputs):
            path = plot(run_dir, out_dir / f"{name}.png")
            if path is not None:
                written[name] = path
    return written


def plot_compare(run_dirs, path):
    """Accuracy and loss of several runs on shared axes: validation curves, or train curves
    (marked so in the legend) for runs without a validation split."""
    fig = _figure(11, 4.5)
    acc_ax, loss_ax = fig.subplots(1, 2)
    splits = set()
    for run_dir in run_dirs:
        metrics_path = Path(run_dir) / "metrics.csv"
        metrics = read_csv_columns(metrics_path) if metrics_path.exists() else {}
        if not metrics or not len(metrics["epoch"]):
            continue
        split = "train" if np.isnan(metrics.get("val_acc", np.array([np.nan]))).all() else "val"
        splits.add(split)
        label = _text(run_label(run_dir) + (" [train]" if split == "train" else ""))
        (line,) = acc_ax.plot(metrics["epoch"], 100 * metrics[f"{split}_acc"], label=label,
                              **_markers(metrics["epoch"]))
        loss_ax.plot(metrics["epoch"], metrics[f"{split}_loss"], color=line.get_color(),
                     **_markers(metrics["epoch"]))
    if not splits:
        return None
    for ax, ylabel in ((acc_ax, "accuracy (%)"), (loss_ax, "cross-entropy loss")):
        _epoch_axis(ax)
        ax.set_ylabel(ylabel)
    acc_ax.legend(loc="lower right", fontsize=9)
    fig.suptitle({frozenset({"val"}): "validation curves",
                  frozenset({"train"}): "train curves (no run has a validation split)"}.get(
        frozenset(splits), "validation curves; [train]: a run without a validation split"))
    return _save(fig, path)


def plot_scaling(series, path):
    """The benchmark's scaling plot: seconds per epoch against the batch size, and against LeNet-5's width,
    engine and PyTorch side by side. `series` maps "batch" and "width" to dict(x=..., engine=..., torch=...,
    title=...), with torch None where PyTorch was not measured."""
    fig = _figure(10, 4)
    for ax, (kind, s) in zip(fig.subplots(1, 2), series.items()):
        ax.plot(s["x"], s["engine"], "o-", label="engine")
        if s["torch"] is not None:
            ax.plot(s["x"], s["torch"], "s--", label="PyTorch")
        if kind == "batch":
            ax.set_xscale("log", base=2)
        ax.set_xticks(s["x"], [str(x) for x in s["x"]])
        ax.set_xlabel({"batch": "batch size", "width": "width (channels × k)"}[kind])
        ax.set_ylabel("seconds per epoch")
        ax.set_ylim(bottom=0)
        ax.set_title(_text(s["title"]), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle("LeNet-5 training epoch: how the cost grows with the work")
    return _save(fig, path)


def require_matplotlib():
    """Raise ImportError, with the install command, where matplotlib is missing."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install 'tinygrad_mnist[plots]'") from error


def _figure(width, height):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    return path


def _text(s):
    # matplotlib reads text between two "$" as math; names from files are shown as written.
    return str(s).replace("$", r"\$")


def _class_name(names, k):
    return names[int(k)] if names and 0 <= int(k) < len(names) else str(int(k))


def _markers(epochs):
    # A run of a few epochs is a few points: mark them so that a one-epoch run still shows.
    return {"marker": "o", "markersize": 4} if len(epochs) <= 40 else {}


def _epoch_axis(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = ax.get_xlim()
    if high - low < 2:
        # One epoch spans no whole unit, and the integer locator would fall back to fractions.
        middle = (low + high) / 2
        ax.set_xlim(middle - 1, middle + 1)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _row_label(ax, text):
    ax.set_ylabel(_text(text), rotation=0, ha="right", va="center", fontsize=9)
