"""A synthetic run folder, written file for file as docs/RUN_FOLDER.md describes a training run's."""

import csv
import json
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DIGIT_NAMES = [str(k) for k in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def make_fake_run(dir, model="lenet5", epochs=3, with_conv=True, with_val=True, seed=0,
                  dataset="mnist", n_wrong=5):
    """Write a complete run folder into `dir` and return its path.

    Every number is made up but consistent: results.json's metrics come from its confusion
    matrix, and feature_maps.npz is the conv model's real forward pass on the first sample.
    """
    run = Path(dir)
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    class_names = FASHION_NAMES if dataset == "fashion" else DIGIT_NAMES

    config = {"model": model, "dataset": dataset, "epochs": epochs, "batch_size": 64, "lr": 0.1,
              "optimizer": "sgd", "momentum": 0.9, "schedule": "exponential",
              "weight_decay": 5e-4, "dropout": 0.0, "augment": False,
              "val_size": 5000 if with_val else 0, "seed": seed, "device": "cpu",
              "data_dir": "data"}
    (run / "config.json").write_text(json.dumps(config, indent=2))

    state = _conv_state(rng) if with_conv else _mlp_state(rng)
    metrics = _write_metrics(run, rng, epochs, config["lr"], with_val)
    _write_lr(run, epochs, config["lr"])
    _write_grad_norms(run, rng, epochs, list(state))
    for name in ("last.npz", "best.npz"):
        np.savez(run / name, __format_version__=np.array(1),
                 __meta__=np.array(json.dumps({"model": {}, "epoch": epochs})),
                 **{f"model/{k}": v for k, v in state.items()})

    accuracy_column = "val_acc" if with_val else "train_acc"
    best_epoch = 1 + int(np.argmax([row[accuracy_column] for row in metrics]))
    results = _results(rng, class_names)
    results.update(epochs_run=epochs, best_epoch=best_epoch,
                   train_seconds=round(sum(row["seconds"] for row in metrics), 2))
    (run / "results.json").write_text(json.dumps(results, indent=2))

    samples = _write_samples(run, rng, n_correct=12, n_wrong=n_wrong)
    if with_conv:
        _write_feature_maps(run, samples, state)
    return run


def _write_metrics(run, rng, epochs, lr, with_val):
    rows = []
    for epoch in range(1, epochs + 1):
        progress = (epoch - 1) / max(epochs - 1, 1)
        train_loss = 0.6 * np.exp(-1.2 * (epoch - 1)) + 0.03 + 0.01 * rng.random()
        val_loss = train_loss + 0.02 + 0.01 * rng.random()
        rows.append({"epoch": epoch, "train_loss": round(train_loss, 5),
                     "train_acc": round(1 - train_loss / 3, 5),
                     "val_loss": round(val_loss, 5) if with_val else "",
                     "val_acc": round(1 - val_loss / 3, 5) if with_val else "",
                     "lr": float(f"{lr * 0.01 ** progress:.6g}"), "seconds": round(11 + rng.random(), 3)})
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                    "lr", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


STEPS_PER_EPOCH = 20


def _write_lr(run, epochs, lr):
    """A one-cycle schedule's rate per step: up for the first 30% of the steps, then down."""
    total = epochs * STEPS_PER_EPOCH
    with open(run / "lr.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "epochs", "lr"])
        for step in range(1, total + 1):
            phase = step / total
            rate = lr * (phase / 0.3 if phase < 0.3 else (1 - phase) / 0.7 + 1e-4)
            writer.writerow([step, f"{step / STEPS_PER_EPOCH:.6g}", f"{rate:.6g}"])


def _write_grad_norms(run, rng, epochs, names):
    with open(run / "grad_norms.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", *names])
        scale = {name: (0.05 if name.endswith("bias") else 0.5) * (1 + rng.random()) for name in names}
        for epoch in range(1, epochs + 1):
            writer.writerow([epoch, epoch * 860, *(float(f"{scale[n] * 0.7 ** epoch * (1 + 0.1 * rng.random()):.6g}")
                                                   for n in names)])


def _edge_filters(rng, count, channels, size):
    """Oriented edge detectors under a Gaussian window, so the filter plot looks like trained filters."""
    coords = np.linspace(-1, 1, size)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    angles = rng.uniform(0, np.pi, (count, channels, 1, 1))
    edges = np.cos(angles) * x + np.sin(angles) * y
    noise = 0.03 * rng.standard_normal((count, channels, size, size))
    return (0.4 * edges * np.exp(-(x ** 2 + y ** 2)) + noise).astype(np.float32)


def _conv_state(rng):
    return {"conv1.weight": _edge_filters(rng, 6, 1, 5),
            "conv1.bias": (0.01 * rng.standard_normal(6)).astype(np.float32),
            "conv2.weight": _edge_filters(rng, 16, 6, 5) / 3,
            "conv2.bias": (0.01 * rng.standard_normal(16)).astype(np.float32),
            "fc.weight": (0.05 * rng.standard_normal((10, 256))).astype(np.float32),
            "fc.bias": np.zeros(10, np.float32)}


def _mlp_state(rng):
    return {"fc1.weight": (0.03 * rng.standard_normal((128, 784))).astype(np.float32),
            "fc1.bias": np.zeros(128, np.float32),
            "fc2.weight": (0.1 * rng.standard_normal((10, 128))).astype(np.float32),
            "fc2.bias": np.zeros(10, np.float32)}


def _results(rng, class_names):
    n = len(class_names)
    confusion = np.zeros((n, n), np.int64)
    for k in range(n):
        support = int(rng.integers(900, 1150))
        errors = int(rng.binomial(support, rng.uniform(0.005, 0.04)))
        others = [j for j in range(n) if j != k]
        confusion[k, others] = rng.multinomial(errors, rng.dirichlet(np.full(n - 1, 0.3)))
        confusion[k, k] = support - errors
    correct = np.diag(confusion)
    precision = correct / np.maximum(confusion.sum(axis=0), 1)
    recall = correct / confusion.sum(axis=1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {"test_loss": round(float(0.05 + 0.02 * rng.random()), 5),
            "test_accuracy": float(correct.sum() / confusion.sum()),
            "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()),
            "per_class": [{"class": class_names[k], "precision": float(precision[k]), "recall": float(recall[k]),
                           "f1": float(f1[k]), "support": int(confusion[k].sum())} for k in range(n)],
            "confusion_matrix": confusion.tolist(), "class_names": list(class_names)}


def _digit(rng):
    """A ring with a stroke through it: digit-shaped enough to check a sample grid by eye."""
    y, x = np.mgrid[0:28, 0:28].astype(np.float32)
    cx, cy = rng.uniform(11, 17, 2)
    rx, ry = rng.uniform(4, 7), rng.uniform(6, 9)
    ring = np.exp(-(((np.hypot((x - cx) / rx, (y - cy) / ry) - 1) * 5) ** 2))
    stroke = np.exp(-((x - cx - (y - cy) * rng.uniform(-0.4, 0.4)) / 1.2) ** 2) * (np.abs(y - cy) < ry)
    return np.clip(ring + rng.choice([0.0, 1.0]) * stroke, 0, 1).astype(np.float32)


def _write_samples(run, rng, n_correct, n_wrong):
    arrays = {}
    for kind, count in (("correct", n_correct), ("wrong", n_wrong)):
        labels = rng.integers(0, 10, count)
        preds = labels if kind == "correct" else (labels + rng.integers(1, 10, count)) % 10
        low, high = (0.9, 1.0) if kind == "correct" else (0.4, 0.9)
        arrays[f"{kind}_images"] = np.array([_digit(rng) for _ in range(count)],
                                            np.float32).reshape(count, 28, 28)
        arrays[f"{kind}_labels"] = labels.astype(np.int64)
        arrays[f"{kind}_preds"] = preds.astype(np.int64)
        arrays[f"{kind}_probs"] = rng.uniform(low, high, count).astype(np.float32)
    np.savez(run / "samples.npz", **arrays)
    return arrays


def _conv(x, weight, bias):
    windows = sliding_window_view(x, weight.shape[2:], axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", windows, weight) + bias[:, None, None]


def _pool(x):
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def _write_feature_maps(run, samples, state):
    image = samples["correct_images"][0]
    maps, x = {"input": image}, image[None]
    layers = [("conv1", lambda x: _conv(x, state["conv1.weight"], state["conv1.bias"])),
              ("relu1", lambda x: np.maximum(x, 0)), ("pool1", _pool),
              ("conv2", lambda x: _conv(x, state["conv2.weight"], state["conv2.bias"])),
              ("relu2", lambda x: np.maximum(x, 0)), ("pool2", _pool)]
    for i, (name, layer) in enumerate(layers):
        x = layer(x)
        maps[f"{i:02d}_{name}"] = x.astype(np.float32)
    np.savez(run / "feature_maps.npz", **maps)
