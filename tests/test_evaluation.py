"""Evaluation, comparison and the eval/calibrate commands: on a fake model (fast), and compare() on
SmolLM2-135M (one model pass for every method)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier, InputError, calibration, cli, evaluation, metrics, plots
from lpclassify.cli import Loader, ModelRequest
from lpclassify.config import NORMALIZATIONS, Config, load_config
from lpclassify.labels import label_indices
from lpclassify.normalize import log_probabilities
from lpclassify.records.labelled import read_labeled

CALIBRATIONS = calibration.method_names()
CONFIG = {"name": "fake", "prompt": "Review: {text}\nSentiment:",
          "labels": {"positive": {"completions": [" positive", " good"]}, "negative": {"completions": [" negative"]}},
          "scoring": {"calibration": "contextual"}}
TEXTS = ["good fun", "bad acting", "plain", "good, not bad", "so good", "bad", "good", "awful and bad",
         "good film", "meh", "good good", "bad bad"]
LABELS = ["positive", "negative", "negative", "positive", "positive", "negative", "positive", "negative",
          "positive", "negative", "positive", "negative"]


@pytest.fixture
def fake(tmp_path: Path) -> Classifier:
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")
    clf = Classifier(load_config(CONFIG), CharBackend(model))
    clf.reference_cache_dir = tmp_path / "cache"
    return clf


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- data


def test_read_labeled(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1, "name": "x"}, {"text": "b", "label": 0}])
    assert read_labeled(path) == (["a", "b"], [1, 0])
    assert read_labeled(path, limit=1) == (["a"], [1])
    assert read_labeled(path, label_field="name", limit=1) == (["a"], ["x"])


@pytest.mark.parametrize(("content", "message"), [
    ('{"text": "a", "label": 0}\n{"text": "b"\n', r"d\.jsonl:2: invalid JSON"),  # classify's message
    ('{"text": "a"}\n', r"d\.jsonl:1: no field 'label'"),
    ('{"text": "  ", "label": 0}\n', r"d\.jsonl:1: field 'text' must be a non-empty string"),
    ('{"text": "a", "label": true}\n', r"d\.jsonl:1: field 'label' must be a label name or an integer"),
    ('[1, 2]\n', r"d\.jsonl:1: expected a JSON object"),
    ("\n\n", r"d\.jsonl: no records"),
])
def test_read_labeled_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_labeled(path)
    with pytest.raises(InputError, match="file not found"):
        read_labeled(tmp_path / "missing.jsonl")


def test_to_indices() -> None:
    names = ("positive", "negative")
    assert label_indices(["negative", 0], names).tolist() == [1, 0]
    # SST-2 stores 0 = negative, 1 = positive: --label-order says so.
    assert label_indices([0, 1], names, ["negative", "positive"]).tolist() == [1, 0]
    with pytest.raises(InputError, match="neither a label name"):
        label_indices(["neutral"], names)
    with pytest.raises(InputError, match="label order"):
        label_indices([0], names, ["bad", "good"])


# --------------------------------------------------------------------------- evaluate / compare


def test_evaluate_matches_the_metrics(fake: Classifier) -> None:
    report = evaluation.evaluate(fake, TEXTS, LABELS)
    y = label_indices(LABELS, fake.config.label_names)
    probs = fake.probabilities(fake.raw_scores(TEXTS))
    np.testing.assert_allclose(report.probabilities, probs)
    assert report.method == "contextual" and report.n == len(TEXTS)
    assert report.accuracy == metrics.accuracy(y, probs.argmax(axis=1))
    assert report.ece == metrics.expected_calibration_error(probs, y)
    assert report.confusion.sum() == len(TEXTS)
    document = report.as_dict(predictions=True)
    assert set(document["per_label"]) == {"positive", "negative"}
    assert len(document["predictions"]) == len(TEXTS)
    json.dumps(document)  # JSON-ready
    # Overrides.
    none = evaluation.evaluate(fake, TEXTS, LABELS, method="none", normalize="chars")
    assert (none.method, none.normalize) == ("none", "chars")
    np.testing.assert_allclose(none.probabilities,
                               fake.probabilities(fake.raw_scores(TEXTS), calibrate=False, normalize="chars"))


def test_compare_is_one_model_pass(fake: Classifier) -> None:
    calls = []
    original = fake.raw_scores
    fake.raw_scores = lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw)  # type: ignore[method-assign]
    before = fake.backend.texts
    rows = evaluation.compare(fake, TEXTS, LABELS, few_shot=4)
    assert calls == [TEXTS]  # the texts are scored once (reference texts go through the reference cache)
    # The model saw the texts + the content-free inputs ("" is also PMI's neutral context) + the domain's
    # random-word inputs.
    assert fake.backend.texts - before == len(TEXTS) + 3 + len(set(calibration.domain_inputs(TEXTS)))
    methods = [*CALIBRATIONS, "fitted@4"]
    assert [(r.method, r.normalize) for r in rows] == [(m, n) for n in NORMALIZATIONS for m in methods]
    by = {(r.method, r.normalize): r for r in rows}
    assert by["fitted@4", "sum"].n == len(TEXTS) - 4 and by["none", "sum"].n == len(TEXTS)
    assert "evaluation texts" in by["domain", "sum"].note
    assert "cross-validated" in by["fitted", "sum"].note
    # Each row equals evaluate() with that method (fitted: same cross-validation).
    for method in ("none", "contextual", "pmi", "batch", "domain", "fitted"):
        report = evaluation.evaluate(fake, TEXTS, LABELS, method=method, raw=original(TEXTS))
        assert by[method, "sum"].accuracy == report.accuracy
        assert by[method, "sum"].log_loss == pytest.approx(report.log_loss)
    # A second compare with the raw scores runs no model at all.
    before = fake.backend.texts
    evaluation.compare(fake, TEXTS, LABELS, raw=original(TEXTS))
    assert fake.backend.texts == before + len(TEXTS)  # just the original(TEXTS) above


def test_cross_validated_fit_is_out_of_fold() -> None:
    rng = np.random.default_rng(1)
    z = log_probabilities(rng.normal(size=(40, 3)))
    y = rng.integers(0, 3, size=40)
    a = calibration.cross_validated_fit(z, y)
    np.testing.assert_array_equal(a, calibration.cross_validated_fit(z, y))  # deterministic
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    # Changing one example's label changes the other folds' fits, never its own prediction's fit.
    y2 = y.copy()
    y2[0] = (y[0] + 1) % 3
    b = calibration.cross_validated_fit(z, y2)
    np.testing.assert_array_equal(a[0], b[0])


def test_few_shot_row_averages_random_draws() -> None:
    rng = np.random.default_rng(2)
    z = log_probabilities(rng.normal(size=(60, 2)))
    y = rng.integers(0, 2, size=60)
    row = evaluation.few_shot_row(["a", "b"], z, y, 8, "sum")
    assert (row.method, row.n) == ("fitted@8", 52) and "mean of 5 draws" in row.note
    assert row == evaluation.few_shot_row(["a", "b"], z, y, 8, "sum")  # deterministic
    single = evaluation.few_shot_row(["a", "b"], z, y, 8, "sum", draws=1)
    order = np.random.default_rng(0).permutation(60)
    fit = calibration.fit_bias_temperature(z[order[:8]], y[order[:8]])
    assert single.accuracy == metrics.accuracy(y[order[8:]], fit.apply(z[order[8:]]).argmax(axis=1))


def test_batch_in_evaluation_follows_classify_many_chunks(fake: Classifier) -> None:
    texts = TEXTS * 3  # 36 texts: chunks of 32 and 4 (batch_size 8 -> classify_many's chunks are 32)
    config = load_config({**CONFIG, "scoring": {"calibration": "batch"}, "runtime": {"batch_size": 8}})
    clf = Classifier(config, fake.backend)
    raw = clf.raw_scores(texts)
    probs, note = evaluation.method_probabilities(clf, raw, texts, np.zeros(36, dtype=int), "batch", "sum")
    expected = [p.probabilities["positive"] for p in clf.classify_many(texts)]
    np.testing.assert_allclose(probs[:, 0], expected)
    assert "32" in note


def test_write_plots(fake: Classifier, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = evaluation.evaluate(fake, TEXTS, LABELS)
    paths = plots.write_plots(report, tmp_path / "plots", stem="fake")
    assert [p.name for p in paths] == ["fake-reliability.png", "fake-confusion.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def cli_files(tmp_path: Path, fake: Classifier):  # type: ignore[no-untyped-def]
    import yaml

    config = tmp_path / "fake.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    data = write_jsonl(tmp_path / "data.jsonl", [{"text": t, "label": int(lab == "positive"), "label_name": lab}
                                                 for t, lab in zip(TEXTS, LABELS, strict=True)])
    return config, data


@pytest.fixture
def loader(tmp_path: Path, fake: Classifier) -> Loader:
    """In place of loading a model: every command runs on the fake backend."""

    def load(config: Config, request: ModelRequest) -> Classifier:
        clf = Classifier.from_config(request.configured(config), request.model, backend=fake.backend)
        clf.reference_cache_dir = tmp_path / "cache"
        return clf

    return load


def test_eval_command(cli_files, loader: Loader, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    config, data = cli_files
    main = partial(cli.main, load_classifier=loader)
    report = tmp_path / "report.json"
    argv = ["eval", "-c", str(config), "-i", str(data), "--label-field", "label_name", "--compare",
            "--report", str(report)]
    if _has_matplotlib():
        argv += ["--plot", str(tmp_path / "plots")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for expected in ("accuracy", "macro-F1", "ECE", "Brier", "confusion matrix", "precision", "coverage",
                     "| calibration | normalize |", "| fitted |"):
        assert expected in out
    document = json.loads(report.read_text())
    assert document["n"] == len(TEXTS) and len(document["compare"]) == 3 * len(CALIBRATIONS)  # no fitted@32: n < 64
    if _has_matplotlib():
        assert (tmp_path / "plots" / "fake-reliability.png").exists()
    # Integer labels in the dataset's order (1 = positive here, the config lists positive first).
    assert main(["eval", "-c", str(config), "-i", str(data), "--label-order", "negative,positive"]) == 0
    assert f"accuracy {document['accuracy']:.4f}" in capsys.readouterr().out


def test_eval_command_user_errors(cli_files, loader: Loader, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    config, data = cli_files
    main = partial(cli.main, load_classifier=loader)
    assert main(["eval", "-c", str(config), "-i", str(data), "--label-field", "nope"]) == 2
    assert "no field 'nope'" in capsys.readouterr().err
    assert main(["eval", "-c", str(config), "-i", str(data), "--label-order", "negative,positive,neutral"]) == 2
    assert main(["eval", "-c", str(config) + ".missing", "-i", str(data)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_calibrate_command(cli_files, loader: Loader, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import yaml

    config, data = cli_files
    main = partial(cli.main, load_classifier=loader)
    output = tmp_path / "fake.calibration.json"
    # The config may already point at the file being written (it does not exist yet).
    config.write_text(yaml.safe_dump({**CONFIG, "scoring": {"calibration": "fitted",
                                                            "calibration_file": output.name}}, sort_keys=False))
    assert main(["calibrate", "-c", str(config), "-i", str(data), "--label-field", "label_name",
                 "-o", str(output)]) == 0
    assert "temperature" in capsys.readouterr().out
    document = json.loads(output.read_text())
    assert set(document) >= {"fitted", "domain", "labels"} and len(document["domain"]["inputs"]) == 20
    assert document["direction"] == "direct"
    clf = loader(load_config(config), ModelRequest())
    assert clf.fitted_ is not None and clf.fitted_.n_examples == len(TEXTS)
    report = evaluation.evaluate(clf, TEXTS, LABELS)
    assert report.method == "fitted" and "own fit" in report.note


def test_calibrate_command_on_a_channel_config(cli_files, loader: Loader, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Channel scoring has no domain prior: the file holds the fit and says it was fitted on channel scores."""
    import yaml

    config, data = cli_files
    output = tmp_path / "channel.calibration.json"
    config.write_text(yaml.safe_dump({**CONFIG, "prompt": "Sentiment: {label}\nReview: {text}", "scoring": {
        "direction": "channel", "calibration": "fitted", "calibration_file": output.name}}, sort_keys=False))
    assert cli.main(["calibrate", "-c", str(config), "-i", str(data), "--label-field", "label_name",
                     "-o", str(output)], load_classifier=loader) == 0
    out = capsys.readouterr().out
    assert "temperature" in out and "domain" not in out
    document = json.loads(output.read_text())
    assert document["direction"] == "channel" and "fitted" in document and "domain" not in document
    clf = loader(load_config(config), ModelRequest())
    report = evaluation.evaluate(clf, TEXTS, LABELS)
    assert report.method == "fitted" and "own fit" in report.note


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- a real model


@pytest.mark.model
def test_real_compare_is_one_model_pass(tmp_path_factory: pytest.TempPathFactory) -> None:
    from conftest import CONFIGS
    from test_calibration import smollm2_backend_one_thread

    texts = ["An absolute joy.", "Dull and far too long.", "I loved it.", "A waste of time.",
             "Charming and wise.", "Makes no sense.", "Beautifully acted.", "Boring."]
    labels = ["positive", "negative"] * 4
    cache = tmp_path_factory.getbasetemp() / "lpclassify-reference-cache"  # shared with test_calibration
    clf = Classifier(load_config(CONFIGS / "sentiment.yaml"), smollm2_backend_one_thread())
    clf.reference_cache_dir = cache
    clf.fit_domain(texts, n_samples=4)  # fewer random-word inputs than compare's own 20: a faster test
    # Reference texts (content-free, neutral, the domain's random words) are input-independent:
    # warm them (that is what the disk cache makes free), then count the passes compare() makes.
    clf.reference_scores([*clf.config.scoring.content_free, *clf.calibration_state.domain_inputs])
    backend = clf.backend
    before = backend.stats.texts
    calls = []
    original = clf.raw_scores
    clf.raw_scores = lambda t, **kw: calls.append(len(t)) or original(t, **kw)  # type: ignore[method-assign]
    rows = evaluation.compare(clf, texts, labels, few_shot=0)
    assert calls == [len(texts)]
    assert backend.stats.texts - before == len(texts)
    assert len(rows) == len(CALIBRATIONS) * len(NORMALIZATIONS)
    assert all(0.0 <= r.accuracy <= 1.0 and np.isfinite(r.log_loss) for r in rows)
    # The disk cache is hit by a fresh classifier: no model call for the content-free prior.
    fresh = Classifier(load_config(CONFIGS / "sentiment.yaml"), backend)
    fresh.reference_cache_dir = cache
    before = backend.stats.texts
    fresh.content_free_prior()
    assert backend.stats.texts == before and fresh.calibrator.references.disk_hits == 3
