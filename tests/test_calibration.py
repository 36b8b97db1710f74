"""Calibrators: their maths on hand-made arrays, their wiring in the Classifier (a fake backend), and
end to end on a real model (SmolLM2-135M, marked ``model``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier, ConfigError, InputError, calibration, evaluation
from lpclassify.calibration import store
from lpclassify.config import load_config
from lpclassify.labels import label_indices
from lpclassify.normalize import log_probabilities, softmax

UNIFORM2 = np.array([0.5, 0.5])


# --------------------------------------------------------------------------- pure maths


def test_apply_prior_divides_and_renormalizes() -> None:
    probs = np.array([[0.6, 0.3, 0.1]])
    prior = np.array([0.5, 0.25, 0.25])
    # 0.6/0.5 = 1.2, 0.3/0.25 = 1.2, 0.1/0.25 = 0.4; total 2.8.
    np.testing.assert_allclose(calibration.apply_prior(probs, prior), [[1.2 / 2.8, 1.2 / 2.8, 0.4 / 2.8]])
    # A uniform prior changes nothing.
    np.testing.assert_allclose(calibration.apply_prior(probs, np.full(3, 1 / 3)), probs)


def test_contextual_maps_the_content_free_mean_to_uniform_exactly() -> None:
    content_free = np.array([[0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    prior = calibration.mean_prior(content_free)
    np.testing.assert_allclose(prior, [0.7, 0.3])
    np.testing.assert_array_equal(calibration.apply_prior(prior, prior), UNIFORM2)
    # A text the model scores exactly like the content-free inputs gets no preference.
    np.testing.assert_allclose(calibration.apply_prior(np.array([[0.7, 0.3]]), prior), [[0.5, 0.5]])
    # A text at [0.5, 0.5] is pushed towards the label the bias hid: 0.5/0.7 vs 0.5/0.3.
    np.testing.assert_allclose(calibration.apply_prior(np.array([[0.5, 0.5]]), prior), [[0.3, 0.7]])


def test_batch_calibration_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]] * 2)
    calibrated, applied = calibration.batch_calibrate(probs)
    assert applied
    # Batch mean [0.75, 0.25]; row [0.9, 0.1] -> [1.2, 0.4] / 1.6 = [0.75, 0.25].
    np.testing.assert_allclose(calibrated[0], [0.75, 0.25])
    np.testing.assert_allclose(calibrated[1], [0.8 / 2.4, 1.6 / 2.4])
    # The batch mean itself becomes exactly uniform, and the calibrated batch mean moves towards it.
    mean = calibration.mean_prior(probs)
    np.testing.assert_allclose(calibration.apply_prior(mean, mean), UNIFORM2)
    assert abs(calibrated.mean(axis=0)[0] - 0.5) < abs(mean[0] - 0.5)


def test_batch_calibration_needs_a_batch() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    same, applied = calibration.batch_calibrate(probs)
    assert not applied and same is not None
    np.testing.assert_array_equal(same, probs)  # one or two texts: no change (not "everything uniform")
    _, applied = calibration.batch_calibrate(probs, min_batch=2)
    assert applied


def test_pmi_subtracts_the_neutral_context() -> None:
    logprobs = np.array([[-1.0, -3.0, -2.0], [-4.0, -1.0, -2.5]])
    neutral = np.array([-0.5, -4.0, -2.0])
    np.testing.assert_allclose(calibration.pmi_scores(logprobs, neutral), [[-0.5, 1.0, 0.0], [-3.5, 3.0, -0.5]])


def test_domain_inputs() -> None:
    texts = ["the cat sat", "on the mat today", "a dog barked loudly here"]  # 3, 4, 5 words: mean 4
    inputs = calibration.domain_inputs(texts, n_samples=20, seed=0)
    vocabulary = {w for t in texts for w in t.split()}
    assert len(inputs) == 20
    assert all(len(s.split()) == 4 and set(s.split()) <= vocabulary for s in inputs)
    assert inputs == calibration.domain_inputs(texts, n_samples=20, seed=0)  # deterministic
    assert inputs != calibration.domain_inputs(texts, n_samples=20, seed=1)
    assert [len(s.split()) for s in calibration.domain_inputs(texts, n_samples=2, length=7)] == [7, 7]
    with pytest.raises(ValueError):
        calibration.domain_inputs(["   "])


def test_fit_recovers_known_bias_and_temperature() -> None:
    rng = np.random.default_rng(0)
    n, k = 4000, 3
    z = log_probabilities(rng.normal(size=(n, k)) * 2)
    true_scale, true_bias = 0.5, np.array([0.8, -0.3, -0.5])
    p = softmax(true_scale * z + true_bias)
    y = np.array([rng.choice(k, p=row) for row in p])
    fit = calibration.fit_bias_temperature(z, y)
    assert fit.scale == pytest.approx(true_scale, abs=0.05)
    centred = np.array(fit.bias) - np.mean(fit.bias)  # softmax ignores a common shift
    np.testing.assert_allclose(centred, true_bias - true_bias.mean(), atol=0.1)
    assert fit.temperature == pytest.approx(1 / fit.scale)
    assert fit.log_loss_after < fit.log_loss_before
    # Deterministic.
    assert calibration.fit_bias_temperature(z, y) == fit


def test_fit_is_at_the_optimum() -> None:
    z = np.log(np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.55, 0.45], [0.3, 0.7]]))
    y = np.array([0, 1, 1, 0, 1, 1])
    fit = calibration.fit_bias_temperature(z, y, ridge=1.0)

    def objective(theta: np.ndarray) -> float:
        logp = log_probabilities(theta[0] * z + theta[1:])
        return -logp[np.arange(len(y)), y].sum() + 0.5 * ((theta[0] - 1) ** 2 + np.sum(theta[1:] ** 2))

    theta = np.array([fit.scale, *fit.bias])
    for i in range(3):  # numerical gradient ~ 0
        step = np.zeros(3)
        step[i] = 1e-5
        assert (objective(theta + step) - objective(theta - step)) / 2e-5 == pytest.approx(0.0, abs=1e-4)
    # Applying it is exactly softmax(scale * z + bias).
    np.testing.assert_allclose(fit.apply(z), softmax(fit.scale * z + np.array(fit.bias)))


def test_fit_edge_cases() -> None:
    z = np.log(np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]]))
    fit = calibration.fit_bias_temperature(z, [0, 1])  # label 2 never seen: bias stays finite
    assert all(np.isfinite(fit.bias)) and fit.scale >= 1e-3
    anti = np.log(np.array([[0.9, 0.1], [0.1, 0.9]] * 5))
    assert calibration.fit_bias_temperature(anti, [1, 0] * 5).scale >= 1e-3  # never a negative temperature
    with pytest.raises(ValueError):
        calibration.fit_bias_temperature(z, [0, 3])
    with pytest.raises(ValueError):
        calibration.fit_bias_temperature(z, [0])


def test_fitted_round_trip() -> None:
    fit = calibration.FittedCalibration((0.1, -0.2), 1.5, 10, 0.7, 0.5)
    assert calibration.FittedCalibration.from_dict(json.loads(json.dumps(fit.as_dict()))) == fit


def test_label_indices() -> None:
    assert label_indices(["b", 1, np.int64(0)], ["a", "b"]).tolist() == [1, 1, 0]
    for bad in (["c"], [2], [True], [1.0]):
        with pytest.raises(InputError, match="neither a label name"):
            label_indices(bad, ["a", "b"])


def test_reference_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ref.json"
    store.write_reference_file(path, {"N/A": ([-1.25, -0.1], [1, 2])}, {"model": None})
    store.write_reference_file(path, {"": ([-3.0, -4.0], [1, 1])}, {"model": None})  # merges
    assert store.read_reference_file(path) == {"N/A": ([-1.25, -0.1], [1, 2]), "": ([-3.0, -4.0], [1, 1])}
    path.write_text("not json")
    assert store.read_reference_file(path) == {}
    assert store.read_reference_file(tmp_path / "missing.json") == {}


def test_calibration_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not an lpclassify calibration file"):
        store.read_calibration_file(path)
    store.write_calibration_file(path, {"labels": ["a", "b"], "fitted": {"bias": [0, 0], "scale": 1}})
    assert store.read_calibration_file(path)["labels"] == ["a", "b"]


# --------------------------------------------------------------------------- wiring (fake backend)


CONFIG = {"name": "fake", "prompt": "Review: {text}\nSentiment:",
          "labels": {"positive": {"completions": [" positive"]}, "negative": {"completions": [" negative"]}}}


def fake_classifier(tmp_path: Path, **scoring: object) -> Classifier:
    model = tmp_path / "fake.gguf"
    if not model.exists():  # rewriting it would change its mtime: a different model for the cache
        model.write_bytes(b"GGUF")
    backend = CharBackend(model, length_penalty=0.1)  # scores shrink with the prompt's length too
    clf = Classifier(load_config({**CONFIG, "scoring": scoring}), backend)
    clf.reference_cache_dir = tmp_path / "cache"
    return clf


def test_classifier_methods_on_a_fake_model(tmp_path: Path) -> None:
    clf = fake_classifier(tmp_path, calibration="none")  # the default is contextual: start uncalibrated
    texts = ["good fun", "bad acting", "plain", "good and bad"] * 2
    raw = clf.raw_scores(texts)
    none = clf.probabilities(raw)
    assert (none[:, 1] > 0.5).sum() >= 6  # biased towards negative
    contextual = clf.probabilities(raw, method="contextual")
    prior = clf.content_free_prior()
    np.testing.assert_allclose(contextual, calibration.apply_prior(none, prior))
    assert contextual[0, 0] > 0.5  # "good fun" is positive once the bias is divided out
    batch = clf.probabilities(raw, method="batch")
    np.testing.assert_allclose(batch, calibration.apply_prior(none, none.mean(axis=0)))
    small = clf.raw_scores(texts[:3])
    np.testing.assert_array_equal(clf.probabilities(small, method="batch"), clf.probabilities(small))  # < 8 texts
    explicit = clf.probabilities(raw, method="batch", batch_prior=np.array([0.2, 0.8]))
    np.testing.assert_allclose(explicit, calibration.apply_prior(none, [0.2, 0.8]))
    neutral = clf.neutral_scores().logprobs[0]
    pmi = clf.probabilities(raw, method="pmi")
    np.testing.assert_allclose(pmi, softmax(raw.logprobs - neutral))
    with pytest.raises(ConfigError, match="fit_domain"):
        clf.probabilities(raw, method="domain")
    with pytest.raises(ConfigError, match="fit"):
        clf.probabilities(raw, method="fitted")
    clf.fit_domain(texts)
    assert clf.config.scoring.calibration == "domain"
    assert clf.domain_prior().shape == (2,)


def test_fit_sets_fitted_calibration(tmp_path: Path) -> None:
    clf = fake_classifier(tmp_path)
    texts = ["good fun", "bad acting", "good", "bad", "great good", "so bad", "good film", "bad film"]
    labels = ["positive", "negative"] * 4
    raw = clf.raw_scores(texts)
    y = np.array([0, 1] * 4)
    before = -np.mean(np.log(clf.probabilities(raw)[np.arange(8), y]))
    assert clf.fit(texts, labels) is clf
    assert clf.config.scoring.calibration == "fitted" and clf.fitted_ is not None
    after = -np.mean(np.log(clf.probabilities(raw)[np.arange(8), y]))
    assert after < before
    assert [p.label for p in clf.classify_many(texts)] == labels
    # Indices work too, in the config's label order.
    assert clf.fit(texts, [0, 1] * 4).fitted_ == clf.fitted_


def test_calibration_file_relative_to_the_config(tmp_path: Path) -> None:
    clf = fake_classifier(tmp_path)
    texts = ["good fun", "bad acting", "good", "bad", "great good", "so bad", "good film", "bad film"]
    clf.fit(texts, [0, 1] * 4).fit_domain(texts)
    clf.save_calibration(tmp_path / "conf" / "cal.json")
    expected = clf.probabilities(clf.raw_scores(texts), method="fitted")
    import yaml

    config_path = tmp_path / "conf" / "fake.yaml"
    config_path.write_text(yaml.safe_dump(sort_keys=False, data={**CONFIG, "scoring": {"calibration": "fitted",
                                                                 "calibration_file": "cal.json"}}))
    loaded = Classifier(load_config(config_path), clf.backend)
    np.testing.assert_allclose(loaded.probabilities(loaded.raw_scores(texts)), expected)
    # The stored domain prior is used as is (no model call) for the same model and settings.
    calls = clf.backend.texts
    np.testing.assert_allclose(loaded.domain_prior(), clf.domain_prior())
    assert clf.backend.texts == calls
    # Wrong label set or a missing file: a ConfigError naming the key.
    other = {**CONFIG, "labels": {"yes": None, "no": None},
             "scoring": {"calibration": "fitted", "calibration_file": "cal.json"}}
    config_path.write_text(yaml.safe_dump(sort_keys=False, data=other))
    with pytest.raises(ConfigError, match=r"scoring\.calibration_file.*labels"):
        Classifier(load_config(config_path), clf.backend).content_free_prior()
    missing = {**CONFIG, "scoring": {"calibration_file": "nope.json"}}
    config_path.write_text(yaml.safe_dump(sort_keys=False, data=missing))
    with pytest.raises(ConfigError, match="cannot read calibration file"):
        Classifier(load_config(config_path), clf.backend).fitted_  # noqa: B018
    # Fitted under another normalization: refuse rather than apply the wrong parameters.
    with pytest.raises(ConfigError, match="refit"):
        loaded.probabilities(loaded.raw_scores(texts), normalize="chars")


CHANNEL = {**CONFIG, "prompt": "Sentiment: {label}\nReview: {text}", "scoring": {"direction": "channel"}}
FIT_TEXTS = ["good fun", "bad acting", "good", "bad", "great good", "so bad", "good film", "bad film"]


def test_a_calibration_file_records_its_direction_and_the_other_direction_refuses_it(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "conf"
    direct = fake_classifier(tmp_path).fit(FIT_TEXTS, [0, 1] * 4)
    direct.save_calibration(conf / "direct.json")
    channel = Classifier(load_config(CHANNEL), direct.backend).fit(FIT_TEXTS, [0, 1] * 4)
    channel.save_calibration(conf / "channel.json")
    assert json.loads((conf / "direct.json").read_text())["direction"] == "direct"
    assert json.loads((conf / "channel.json").read_text())["direction"] == "channel"

    def loaded(base: dict, file: str) -> Classifier:
        config_path = conf / "config.yaml"
        config_path.write_text(yaml.safe_dump({**base, "scoring": {**base.get("scoring", {}), "calibration": "fitted",
                                                                  "calibration_file": file}}, sort_keys=False))
        return Classifier(load_config(config_path), direct.backend)

    assert loaded(CONFIG, "direct.json").fitted_ == direct.fitted_
    assert loaded(CHANNEL, "channel.json").fitted_ == channel.fitted_
    for base, file, made, used in ((CHANNEL, "direct.json", "direct", "channel"),
                                   (CONFIG, "channel.json", "channel", "direct")):
        with pytest.raises(ConfigError) as error:
            loaded(base, file).fitted_  # noqa: B018 - the file is read on first use
        message = str(error.value)
        assert error.value.key == "scoring.calibration_file" and f"{file} was fitted with" in message
        assert f"scoring.direction: {made}" in message and f"scoring.direction: {used}" in message
        assert f"lpclassify calibrate -c {conf / 'config.yaml'} -i LABELLED.jsonl -o" in message
        with pytest.raises(ConfigError, match=r"scoring\.direction: channel"):  # Classifier.load_calibration too
            Classifier(load_config(base), direct.backend).load_calibration(conf / file)


def test_a_channel_fit_is_used_in_process_and_through_its_file(tmp_path: Path) -> None:
    """Channel's logsumexp is a log-mean over verbalizations: the fit records what it was made on."""
    channel = Classifier(load_config(CHANNEL), fake_classifier(tmp_path).backend)
    raw = channel.raw_scores(FIT_TEXTS)
    before = channel.probabilities(raw, calibrate=False)
    fitted = channel.fit(FIT_TEXTS, [0, 1] * 4).probabilities(raw)
    assert not np.allclose(fitted, before)
    channel.save_calibration(tmp_path / "channel.json")
    again = Classifier(load_config({**CHANNEL, "scoring": {"direction": "channel", "calibration": "fitted"}}),
                       channel.backend).load_calibration(tmp_path / "channel.json")
    np.testing.assert_array_equal(again.probabilities(raw), fitted)


def test_a_calibration_file_without_a_direction_is_a_direct_one(tmp_path: Path) -> None:
    """Files written before the direction was recorded keep working with direct configs."""
    clf = fake_classifier(tmp_path).fit(FIT_TEXTS, [0, 1] * 4)
    path = tmp_path / "old.json"
    clf.save_calibration(path)
    data = json.loads(path.read_text())
    del data["direction"]
    path.write_text(json.dumps(data))
    old = fake_classifier(tmp_path, calibration="fitted").load_calibration(path)
    raw = clf.raw_scores(FIT_TEXTS)
    np.testing.assert_array_equal(old.probabilities(raw), clf.probabilities(raw))
    with pytest.raises(ConfigError, match=r"with scoring\.direction: direct, but .* scoring\.direction: channel"):
        Classifier(load_config(CHANNEL), clf.backend).load_calibration(path)


def test_a_new_calibration_method_is_one_module_and_one_registry_line(tmp_path: Path) -> None:
    from toy_calibration import Shrink

    with pytest.raises(ConfigError, match="calibration: expected one of"):
        fake_classifier(tmp_path, calibration="shrink")
    calibration.register(Shrink())  # the one line (a built-in method goes into registry.BUILTIN instead)
    try:
        clf = fake_classifier(tmp_path, calibration="shrink")
        texts = ["good fun", "bad acting", "good", "bad"]
        raw = clf.raw_scores(texts)
        plain = clf.probabilities(raw, calibrate=False)
        np.testing.assert_allclose(clf.probabilities(raw), 0.5 * plain + 0.25)
        assert [p.probabilities["positive"] for p in clf.classify_many(texts)] == \
            pytest.approx((0.5 * plain + 0.25)[:, 0].tolist())
        rows = evaluation.compare(clf, texts, [0, 1, 0, 1], raw=raw, normalizations=["sum"])
        assert "shrink" in [row.method for row in rows]
    finally:
        calibration.unregister("shrink")
    assert "shrink" not in calibration.method_names()


def test_reference_scores_are_cached_on_disk(tmp_path: Path) -> None:
    first = fake_classifier(tmp_path)
    prior = first.content_free_prior()
    assert first.backend.texts == 3
    first.content_free_prior(normalize="mean")  # other settings reuse the raw scores: no model call
    assert first.backend.texts == 3
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    second = fake_classifier(tmp_path)  # a new process, in effect
    np.testing.assert_array_equal(second.content_free_prior(), prior)
    assert second.backend.texts == 0 and second.calibrator.references.disk_hits == 3
    second.neutral_scores()  # "" is one of the content-free inputs: shared
    assert second.backend.texts == 0
    # A different prompt is a different cache file.
    other = Classifier(load_config({**CONFIG, "prompt": "Text: {text}\nSentiment:"}), second.backend)
    other.reference_cache_dir = tmp_path / "cache"
    other.content_free_prior()
    assert second.backend.texts == 3 and len(list((tmp_path / "cache").glob("*.json"))) == 2


# --------------------------------------------------------------------------- a real model


REVIEWS = ["An absolute joy from start to finish.", "Dull, lifeless and far too long.", "I loved it.",
           "A waste of two hours.", "Charming, funny and wise.", "The plot makes no sense at all.",
           "Beautifully shot and acted.", "Boring.", "One of the best films of the year.", "Painfully bad."]
REVIEW_LABELS = ["positive", "negative"] * 5


def smollm2_backend_one_thread():  # type: ignore[no-untyped-def]
    """SmolLM2 on one thread: on a small machine shared with other jobs, llama.cpp's worker threads
    wait on each other at every barrier and a two-thread decode can take seconds, not milliseconds."""
    from conftest import model_path

    from lpclassify.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(model_path("smollm2"), n_ctx=512, batch_size=8, threads=1)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    from conftest import CONFIGS

    clf = Classifier(load_config(CONFIGS / "sentiment.yaml"), smollm2_backend_one_thread())
    clf.reference_cache_dir = tmp_path_factory.getbasetemp() / "lpclassify-reference-cache"  # session-wide
    return clf


@pytest.fixture(scope="module")
def reviews_raw(smollm2: Classifier):  # type: ignore[no-untyped-def]
    return smollm2.raw_scores(REVIEWS)  # the module's one model pass over the reviews


@pytest.mark.model
def test_real_contextual_prior(smollm2: Classifier) -> None:
    content_free = smollm2.config.scoring.content_free
    raw = smollm2.reference_scores(content_free)
    uncalibrated = smollm2.probabilities(raw, calibrate=False)
    prior = smollm2.content_free_prior()
    np.testing.assert_array_equal(prior, uncalibrated.mean(axis=0))
    # The content-free mean goes to exactly uniform (single inputs need not: the prior is their mean).
    np.testing.assert_allclose(calibration.apply_prior(prior, prior), UNIFORM2, atol=1e-15)
    calibrated = smollm2.probabilities(raw, method="contextual")
    np.testing.assert_allclose(calibrated, calibration.apply_prior(uncalibrated, prior))


@pytest.mark.model
def test_real_batch_calibration(smollm2: Classifier, reviews_raw) -> None:  # type: ignore[no-untyped-def]
    uncalibrated = smollm2.probabilities(reviews_raw, calibrate=False)
    batch = smollm2.probabilities(reviews_raw, method="batch")
    mean = uncalibrated.mean(axis=0)
    np.testing.assert_allclose(calibration.apply_prior(mean, mean), UNIFORM2, atol=1e-15)
    np.testing.assert_allclose(batch, calibration.apply_prior(uncalibrated, mean))
    assert abs(batch.mean(axis=0)[0] - 0.5) <= abs(mean[0] - 0.5)
    # A short batch (as in classify_many's last chunk) stays uncalibrated.
    small = reviews_raw.rows(slice(0, 3))
    np.testing.assert_array_equal(smollm2.probabilities(small, method="batch"),
                                  smollm2.probabilities(small, calibrate=False))


@pytest.mark.model
def test_real_fit_lowers_log_loss(smollm2: Classifier, reviews_raw) -> None:  # type: ignore[no-untyped-def]
    clf = Classifier(smollm2.config, smollm2.backend)
    y = label_indices(REVIEW_LABELS, clf.config.label_names)
    before = -np.mean(np.log(clf.probabilities(reviews_raw, calibrate=False)[np.arange(len(y)), y]))
    clf.fit_scores(reviews_raw, REVIEW_LABELS)  # fit() is this after one raw_scores pass
    after = -np.mean(np.log(clf.probabilities(reviews_raw)[np.arange(len(y)), y]))
    assert after < before
    assert clf.config.scoring.calibration == "fitted"
    assert clf.fitted_ is not None and clf.fitted_.log_loss_after == pytest.approx(after)


def test_reference_cache_follows_the_model_file(tmp_path: Path) -> None:
    import os

    first = fake_classifier(tmp_path)
    first.content_free_prior()
    model = tmp_path / "fake.gguf"
    os.utime(model, ns=(1, 1))  # same path, new mtime: another model as far as the cache knows
    second = fake_classifier(tmp_path)
    second.content_free_prior()
    assert second.backend.texts == 3
    third = fake_classifier(tmp_path)
    third.reference_cache_dir = None  # memory only
    third.content_free_prior()
    assert third.backend.texts == 3
