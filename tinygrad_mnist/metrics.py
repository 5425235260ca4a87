"""Classification metrics: confusion matrix and per-class precision, recall and F1."""

import numpy as np

from .tables import table


def _check(labels, preds, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    labels, preds = np.asarray(labels), np.asarray(preds)
    if labels.ndim != 1 or preds.ndim != 1:
        raise ValueError(f"labels and preds must be 1-D, got shapes {labels.shape} and {preds.shape}")
    if labels.shape != preds.shape:
        raise ValueError(f"labels and preds differ in length: {len(labels)} and {len(preds)}")
    if labels.size == 0:
        # np.asarray([]) is float64; an empty input carries no wrong type.
        return labels.astype(np.int64), preds.astype(np.int64)
    for name, a in (("labels", labels), ("preds", preds)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got dtype {a.dtype}")
        if a.min() < 0 or a.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got values in [{a.min()}, {a.max()}]")
    return labels.astype(np.int64), preds.astype(np.int64)


def confusion_matrix(labels, preds, num_classes=10):
    """Counts of (true class, predicted class) pairs: rows are true labels, columns predictions."""
    labels, preds = _check(labels, preds, num_classes)
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def classification_report(labels, preds, num_classes=10, class_names=None):
    """Accuracy, per-class precision/recall/F1/support and their unweighted (macro) means.

    A class that is never predicted has precision 0.0 and a class with no true samples has
    recall 0.0, as scikit-learn does with ``zero_division=0``; F1 is 2·tp / (2·tp + fp + fn),
    0.0 when that denominator is 0. Macro means run over all ``num_classes`` classes, absent
    ones included (scikit-learn with ``labels=range(num_classes)``). Every value is a plain
    Python int, float, str or list, so the dict goes straight to ``json.dump``.
    """
    cm = confusion_matrix(labels, preds, num_classes)
    total = int(cm.sum())
    if total == 0:
        raise ValueError("classification_report needs at least one sample")
    if class_names is None:
        class_names = [str(k) for k in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")

    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    # np.divide with where= leaves the 0/0 entries at the 0.0 of `out` instead of warning.
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * tp, predicted + support, out=np.zeros_like(tp), where=predicted + support > 0)

    per_class = [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]
    return {
        "accuracy": float(tp.sum() / total),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def format_report(report):
    """A table of a classification_report: one row per class, then the macro average and accuracy."""
    rows = report["per_class"]
    total = sum(row["support"] for row in rows)
    body = [[row["class"], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", row["support"]]
            for row in rows]
    body.append(["macro avg", f"{report['macro_precision']:.4f}", f"{report['macro_recall']:.4f}",
                 f"{report['macro_f1']:.4f}", total])
    body.append(["accuracy", "", "", f"{report['accuracy']:.4f}", total])
    return table(["class", "precision", "recall", "f1", "support"], body)
