"""Multi-label with one shared question (``decision.multi.scoring: shared``): the labels compete as in
single-label mode and each is chosen at its threshold. The maths on the fake backend; the real
model's side is in test_classifier.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier, cli
from lpclassify.calibration.thresholds import fit_thresholds, label_sets
from lpclassify.config import load_config
from lpclassify.config.dump import config_yaml

SHARED = {"prompt": "Text: {text}\nTone:", "labels": ["positive", "negative", "other"],
          "scoring": {"calibration": "contextual"},
          "decision": {"mode": "multi", "multi": {"scoring": "shared", "none": "other"}}}
TEXTS = ([f"good thing {i}" for i in range(5)] + [f"bad thing {i}" for i in range(5)]
         + [f"a thing {i}" for i in range(4)])
LABELS = [["positive"]] * 5 + [["negative"]] * 5 + [[]] * 4


def fake_loader(config, request):  # type: ignore[no-untyped-def]
    return Classifier(request.configured(config), CharBackend(length_penalty=1.0))


def test_shared_config_round_trips_through_the_writer() -> None:
    config = load_config(SHARED)
    again = load_config(json.loads(json.dumps(__import__("yaml").safe_load(config_yaml(config)))))
    assert again.decision == config.decision and again.decision.score_mode == "single"


def test_calibrate_fits_thresholds_on_the_probabilities_the_config_gives(tmp_path: Path) -> None:
    """The thresholds are fitted on calibrated probabilities (the config's own calibration), not on raw
    scores: bias/temperature fitting switches calibration off, threshold fitting must not."""
    base = tmp_path / "shared.yaml"
    base.write_text(config_yaml(load_config(SHARED)))
    data = tmp_path / "tags.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(TEXTS, LABELS, strict=True)))
    out = tmp_path / "fitted.yaml"
    assert cli.main(["calibrate", "-c", str(base), "-i", str(data), "--write-config", str(out)],
                    load_classifier=fake_loader) == 0
    fitted = load_config(out)
    clf = Classifier(load_config(base), CharBackend(length_penalty=1.0))
    probabilities = np.array([[p.probabilities[n] for n in clf.config.label_names] for p in clf.classify_many(TEXTS)])
    expected = fit_thresholds(probabilities, label_sets(LABELS, clf.config.label_names), [0.5] * 3)
    assert [label.threshold for label in fitted.labels] == pytest.approx(expected, abs=1e-6)
    uncalibrated = Classifier(load_config({**SHARED, "scoring": {"calibration": "none"}}),
                              CharBackend(length_penalty=1.0))
    raw = np.array([[p.probabilities[n] for n in clf.config.label_names] for p in uncalibrated.classify_many(TEXTS)])
    assert not np.allclose(raw, probabilities)  # calibration matters here, so the test can tell the two apart
    predicted = Classifier(fitted, CharBackend(length_penalty=1.0)).classify_many(TEXTS)
    assert [set(p.labels) for p in predicted] == [set(y) for y in LABELS]
    assert all(p.abstained and p.label is None for p in predicted[10:])  # no tag over its threshold: no tag
