"""Metrics on hand-made arrays, against values computed by hand (worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lpclassify import metrics

# Three labels, ten examples. Confusion (rows true, columns predicted):
#   true 0: predicted 0,1,0        -> [2, 1, 0]
#   true 1: predicted 1,2,1        -> [0, 2, 1]
#   true 2: predicted 2,2,0,2      -> [1, 0, 3]
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
Y_PRED = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])


def test_accuracy() -> None:
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.7)  # 7 of 10 on the diagonal
    assert math.isnan(metrics.accuracy([], []))


def test_confusion_matrix() -> None:
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    # A label nobody has still gets its row and column.
    assert metrics.confusion_matrix([0, 0], [0, 1], 3).tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_per_label_and_macro_f1() -> None:
    result = metrics.per_label(Y_TRUE, Y_PRED, 3)
    # Column sums 3, 3, 4 with 2, 2, 3 correct; row sums 3, 3, 4.
    np.testing.assert_allclose(result.precision, [2 / 3, 2 / 3, 3 / 4])
    np.testing.assert_allclose(result.recall, [2 / 3, 2 / 3, 3 / 4])
    np.testing.assert_allclose(result.f1, [2 / 3, 2 / 3, 3 / 4])
    assert result.support.tolist() == [3, 3, 4]
    assert metrics.macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)


def test_per_label_never_predicted_counts_as_zero() -> None:
    # Label 1 is never predicted: precision 0 (not nan), recall 0, F1 0; label 0: P = 2/4, R = 1.
    result = metrics.per_label([0, 0, 1, 1], [0, 0, 0, 0], 2)
    np.testing.assert_allclose(result.precision, [0.5, 0.0])
    np.testing.assert_allclose(result.recall, [1.0, 0.0])
    np.testing.assert_allclose(result.f1, [2 / 3, 0.0])
    assert metrics.macro_f1([0, 0, 1, 1], [0, 0, 0, 0], 2) == pytest.approx(1 / 3)


PROBS = np.array([[0.9, 0.1], [0.91, 0.09], [0.3, 0.7]])
Y = np.array([0, 1, 1])


def test_ece_by_hand() -> None:
    # Bins of width 1/15. 0.90 and 0.91 share (0.8667, 0.9333]: accuracy 1/2, confidence 0.905,
    # gap 0.405; 0.7 is alone in (0.6667, 0.7333] and right: gap 0.3. ECE = (2*0.405 + 0.3) / 3.
    assert metrics.expected_calibration_error(PROBS, Y) == pytest.approx((2 * 0.405 + 0.3) / 3)
    # One example per bin: the mean of |correct - confidence|.
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.52, 0.48], [0.22, 0.78]])
    assert metrics.expected_calibration_error(probs, [0, 1, 0, 1]) == pytest.approx((0.05 + 0.55 + 0.48 + 0.22) / 4)
    # Perfectly confident and right: zero.
    assert metrics.expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)


def test_reliability_bins() -> None:
    bins = metrics.reliability_bins(PROBS, Y)
    assert len(bins.edges) == 16 and bins.count.sum() == 3
    assert bins.count[13] == 2 and bins.count[10] == 1
    assert bins.confidence[13] == pytest.approx(0.905) and bins.accuracy[13] == pytest.approx(0.5)
    assert np.isnan(bins.accuracy[0])


def test_brier_and_log_loss() -> None:
    # (0.1^2 + 0.1^2) + (0.91^2 + 0.91^2) + (0.3^2 + 0.3^2), over 3.
    assert metrics.brier_score(PROBS, Y) == pytest.approx((0.02 + 2 * 0.8281 + 0.18) / 3)
    assert metrics.log_loss(PROBS, Y) == pytest.approx(-(math.log(0.9) + math.log(0.09) + math.log(0.7)) / 3)
    assert metrics.brier_score(np.eye(2), [0, 1]) == 0.0
    assert metrics.brier_score(np.eye(2), [1, 0]) == 2.0


def test_selective_accuracy() -> None:
    rows = metrics.selective_accuracy(PROBS, Y, [0.5, 0.8, 0.95])
    assert [r.n_answered for r in rows] == [3, 2, 0]
    assert [r.coverage for r in rows] == pytest.approx([1.0, 2 / 3, 0.0])
    assert rows[0].accuracy == pytest.approx(2 / 3)  # rows 0 and 2 right, row 1 wrong
    assert rows[1].accuracy == pytest.approx(0.5)  # only the 0.90 and 0.91 rows answer
    assert math.isnan(rows[2].accuracy)
    # The threshold is inclusive, like the decision rule (answer when top >= threshold).
    assert metrics.selective_accuracy(PROBS, Y, [0.7])[0].n_answered == 3


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        metrics.brier_score(np.array([0.5, 0.5]), [0])
    with pytest.raises(ValueError):
        metrics.expected_calibration_error(PROBS, [0, 1])
