"""Decision maths on hand-made arrays: argmax, abstention with a reason, top-k, multi-label."""

from __future__ import annotations

import numpy as np
import pytest

from lpclassify.decision import decide_multi, decide_single
from lpclassify.normalize import aggregate, normalize, softmax

NAMES = ["world", "sports", "business"]


def test_argmax_and_top_k() -> None:
    p = decide_single(NAMES, [0.2, 0.5, 0.3], threshold=0.0, top_k=2)
    assert (p.label, p.labels, p.abstained, p.reason) == ("sports", ("sports", "business"), False, None)
    assert p.probabilities == {"world": 0.2, "sports": 0.5, "business": 0.3}


def test_abstains_below_threshold_and_says_why() -> None:
    p = decide_single(NAMES, [0.2, 0.45, 0.35], threshold=0.5, top_k=1)
    assert p.label is None and p.abstained and p.labels == ()
    assert p.reason == "top probability 0.450 (sports) is below the threshold 0.500"


def test_ties_go_to_the_first_label() -> None:
    assert decide_single(NAMES, [0.4, 0.4, 0.2], threshold=0.0, top_k=1).label == "world"


def test_multi_label_decides_each_label_on_its_own() -> None:
    p = decide_multi(NAMES, [0.9, 0.55, 0.7], [0.5, 0.6, 0.5])
    assert p.labels == ("world", "business") and p.label == "world" and not p.abstained
    none = decide_multi(NAMES, [0.1, 0.3, 0.2], [0.5, 0.5, 0.5])
    assert none.abstained and none.label is None
    assert none.reason == "no label reached its threshold (best: sports 0.300 < 0.500)"


def test_multi_label_never_chooses_the_none_label_and_says_when_it_wins() -> None:
    names = ["billing", "bug", "other"]
    p = decide_multi(names, [0.45, 0.4, 0.15], [0.3, 0.3, 0.3], none="other")
    assert p.labels == ("billing", "bug") and not p.abstained
    q = decide_multi(names, [0.1, 0.2, 0.7], [0.3, 0.3, 0.0], none="other")  # over its threshold, still not chosen
    assert q.abstained and q.labels == () and q.label is None
    assert q.reason == ("other (none of the labels) is the most likely answer, 0.700; "
                        "no label reached its threshold (best: bug 0.200 < 0.300)")


def test_normalizations() -> None:
    logprobs = np.array([-2.0, -6.0])
    assert normalize(logprobs, np.array([1, 3]), np.array([4, 12]), "sum").tolist() == [-2.0, -6.0]
    assert normalize(logprobs, np.array([1, 3]), np.array([4, 12]), "mean").tolist() == [-2.0, -2.0]
    assert normalize(logprobs, np.array([1, 3]), np.array([4, 12]), "chars").tolist() == [-0.5, -0.5]
    with pytest.raises(ValueError):
        normalize(logprobs, np.array([1, 3]), np.array([4, 12]), "median")


def test_aggregation_of_a_labels_completions() -> None:
    scores = np.array([np.log(0.1), np.log(0.2), np.log(0.3)])
    owners = [0, 0, 1]
    assert np.allclose(aggregate(scores, owners, 2, "logsumexp"), np.log([0.3, 0.3]))
    assert np.allclose(aggregate(scores, owners, 2, "max"), np.log([0.2, 0.3]))
    batch = np.stack([scores, scores])
    assert aggregate(batch, owners, 2, "max").shape == (2, 2)


@pytest.mark.parametrize("method", ["logsumexp", "max", "logmeanexp"])
def test_grouped_aggregation_gives_each_label_the_bits_of_a_reduction_of_it_alone(method: str) -> None:
    # aggregate reduces labels with the same number of completions together; the result must be
    # what reducing each label's own columns, in column order, gives -- to the last bit.
    rng = np.random.default_rng(7)
    for _ in range(50):
        n_labels = int(rng.integers(1, 30))
        owners = np.concatenate([np.arange(n_labels), rng.integers(-1, n_labels, size=3 * n_labels)])
        rng.shuffle(owners)
        scores = rng.normal(size=(2, len(owners))) * 4
        expected = np.empty((2, n_labels))
        for label in range(n_labels):
            mine = scores[:, owners == label]
            peak = mine.max(axis=-1, keepdims=True)
            lse = np.squeeze(peak, -1) + np.log(np.sum(np.exp(mine - peak), axis=-1))
            expected[:, label] = {"max": mine.max(axis=-1), "logsumexp": lse,
                                  "logmeanexp": lse - np.log(mine.shape[-1])}[method]
        assert aggregate(scores, owners.tolist(), n_labels, method).tobytes() == expected.tobytes()
        assert aggregate(scores[0], owners.tolist(), n_labels, method).tobytes() == expected[0].tobytes()


def test_softmax_is_stable_and_sums_to_one() -> None:
    probs = softmax(np.array([-1000.0, -1001.0, -1002.0]))
    assert np.isclose(probs.sum(), 1.0) and probs[0] > probs[1] > probs[2]
    assert np.allclose(probs, softmax(np.array([0.0, -1.0, -2.0])))
