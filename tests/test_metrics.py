import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_mnist.metrics import classification_report, confusion_matrix, format_report

# Three classes, worked by hand:
#   true 0: predicted 0, 0, 1     true 1: predicted 1, 2     true 2: predicted 2, 2, 0
LABELS = [0, 0, 0, 1, 1, 2, 2, 2]
PREDS = [0, 0, 1, 1, 2, 2, 2, 0]


def test_confusion_matrix_counts_true_rows_predicted_columns():
    cm = confusion_matrix(LABELS, PREDS, num_classes=3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [1, 0, 2]])


def test_report_matches_hand_computed_values():
    r = classification_report(LABELS, PREDS, num_classes=3)
    # precision = tp / column sum, recall = tp / row sum, f1 = 2pr / (p + r)
    expected = [(2 / 3, 2 / 3, 2 / 3, 3), (1 / 2, 1 / 2, 1 / 2, 2), (2 / 3, 2 / 3, 2 / 3, 3)]
    for row, (p, rec, f, s) in zip(r["per_class"], expected):
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(rec)
        assert row["f1"] == pytest.approx(f)
        assert row["support"] == s
    assert r["accuracy"] == pytest.approx(5 / 8)
    assert r["macro_precision"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]


def test_unequal_precision_and_recall_give_harmonic_mean_f1():
    # class 0: tp 1, fp 2, fn 0 -> precision 1/3, recall 1, f1 = 2*(1/3)/(4/3) = 1/2
    r = classification_report([0, 1, 1], [0, 0, 0], num_classes=2)
    c0 = r["per_class"][0]
    assert (c0["precision"], c0["recall"], c0["f1"]) == pytest.approx((1 / 3, 1.0, 0.5))


def test_perfect_predictions_score_one_everywhere():
    y = np.arange(10).repeat(3)
    r = classification_report(y, y)
    assert r["accuracy"] == r["macro_precision"] == r["macro_recall"] == r["macro_f1"] == 1.0
    assert all(row["precision"] == row["recall"] == row["f1"] == 1.0 for row in r["per_class"])


def test_absent_class_scores_zero_and_counts_in_macro_mean():
    # Class 2 has no true samples and is never predicted; class 1 is never predicted.
    r = classification_report([0, 0, 1], [0, 0, 0], num_classes=3)
    c1, c2 = r["per_class"][1], r["per_class"][2]
    assert (c1["precision"], c1["recall"], c1["f1"], c1["support"]) == (0.0, 0.0, 0.0, 1)
    assert (c2["precision"], c2["recall"], c2["f1"], c2["support"]) == (0.0, 0.0, 0.0, 0)
    assert r["macro_recall"] == pytest.approx(1 / 3)
    assert r["macro_precision"] == pytest.approx((2 / 3) / 3)


def test_report_is_json_serialisable_with_plain_types():
    r = classification_report(np.array([0, 1, 1], np.int32), np.array([0, 1, 0], np.uint8), num_classes=2)
    assert json.loads(json.dumps(r)) == r
    assert type(r["accuracy"]) is float and type(r["per_class"][0]["support"]) is int


def test_class_names_label_the_rows():
    r = classification_report([0, 1], [0, 1], num_classes=2, class_names=["cat", "dog"])
    assert [row["class"] for row in r["per_class"]] == ["cat", "dog"]
    assert [row["class"] for row in classification_report([0, 1], [0, 1], 2)["per_class"]] == ["0", "1"]


def test_format_report_has_a_row_per_class_plus_macro_and_accuracy():
    text = format_report(classification_report(LABELS, PREDS, num_classes=3, class_names=["a", "b", "c"]))
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines()]
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    assert rows[2] == ["a", "0.6667", "0.6667", "0.6667", "3"]
    assert rows[5] == ["macro avg", "0.6111", "0.6111", "0.6111", "8"]
    assert rows[6] == ["accuracy", "", "", "0.6250", "8"]


@pytest.mark.parametrize(
    "labels, preds, num_classes, message",
    [
        ([0, 1], [0], 10, "differ in length"),
        ([[0, 1]], [[0, 1]], 10, "must be 1-D"),
        ([0, 10], [0, 1], 10, r"labels must lie in \[0, 9\]"),
        ([0, 1], [-1, 1], 10, r"preds must lie in \[0, 9\]"),
        ([0.0, 1.0], [0, 1], 10, "integer class indices"),
        ([0, 1], [0, 1], 0, "positive integer"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(labels, preds, num_classes, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(labels, preds, num_classes)


def test_report_refuses_empty_input_and_wrong_number_of_names():
    assert confusion_matrix([], [], 3).sum() == 0
    with pytest.raises(ValueError, match="at least one sample"):
        classification_report([], [], 3)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_report([0], [0], 3, class_names=["a", "b"])


def test_agrees_with_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    keep = (rng.random(500) < 0.6) & (labels < 6)
    preds = np.where(keep, labels, rng.integers(0, 6, 500))  # class 6 is never predicted
    r = classification_report(labels, preds, num_classes=7)
    k = list(range(7))
    np.testing.assert_array_equal(r["confusion_matrix"], skm.confusion_matrix(labels, preds, labels=k))
    p, rec, f, s = skm.precision_recall_fscore_support(labels, preds, labels=k, zero_division=0)
    np.testing.assert_allclose([row["precision"] for row in r["per_class"]], p)
    np.testing.assert_allclose([row["recall"] for row in r["per_class"]], rec)
    np.testing.assert_allclose([row["f1"] for row in r["per_class"]], f)
    assert [row["support"] for row in r["per_class"]] == s.tolist()
    macro = skm.precision_recall_fscore_support(labels, preds, labels=k, average="macro", zero_division=0)
    assert (r["macro_precision"], r["macro_recall"], r["macro_f1"]) == pytest.approx(macro[:3])


pairs = st.integers(1, 12).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=200),
    )
)


@given(pairs)
def test_confusion_matrix_sums_to_n_and_its_trace_is_the_accuracy(case):
    k, samples = case
    labels, preds = np.array(samples).T
    cm = confusion_matrix(labels, preds, num_classes=k)
    assert cm.sum() == len(samples)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(labels, minlength=k))
    assert classification_report(labels, preds, num_classes=k)["accuracy"] == pytest.approx(
        np.trace(cm) / len(samples)
    )
    assert np.trace(cm) / len(samples) == pytest.approx(np.mean(labels == preds))
