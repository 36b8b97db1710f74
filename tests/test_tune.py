"""``tune``: the search's maths against the classifier's, the honesty of its estimate, the command.

The maths and the protocol run on a fake backend (tests/fakes.py); the command also runs on a real
model (SmolLM2-135M, marked ``model``) over the question-type examples written for this project.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier, cli
from lpclassify.config import load_config
from lpclassify.config.dump import config_yaml
from lpclassify.normalize import label_bias, safe_log, yes_bias
from lpclassify.tuning import Search, Setting, chosen_config, tune
from lpclassify.tuning.run import prompt_scores
from lpclassify.tuning.search import (
    PromptScores,
    apply_fit,
    folds_of,
    label_free_methods,
    label_log_probs,
    nested_estimate,
    settings_for,
)
from lpclassify.tuning.verbalizers import candidates, styles

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "benchmarks" / "data"

BASE = {"prompt": "Review: {text}\nSentiment:",
        "labels": {"positive": {"completions": [" positive"], "description": "the writer liked it"},
                   "negative": {"completions": [" negative", " awful"]}},
        "scoring": {"calibration": "contextual"},
        "search": {"prompts": ["Text: {text}\nIt was"], "completions": {"positive": [" good"]}}}
TEXTS = ([f"good film number {i}" for i in range(12)] + [f"bad film number {i}" for i in range(12)]
         + [f"so-so film {i}" for i in range(8)])
LABELS = ["positive"] * 12 + ["negative"] * 12 + ["positive", "negative"] * 4


def write_jsonl(path: Path, texts: list[str], labels: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)))
    return path


# --------------------------------------------------------------------------- per-label bias and temperature


def test_label_bias_is_nats_on_the_log_probability() -> None:
    p = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(label_bias(p, [np.log(4.0), 0.0]), [[0.5, 0.5]])
    assert label_bias(p, [0.0, 0.0]) is not None and np.array_equal(label_bias(p, [0.0, 0.0]), p)
    hot = label_bias(p, [0.0, 0.0], temperature=0.5)  # T < 1 sharpens: 0.2^2 : 0.8^2
    np.testing.assert_allclose(hot, [[0.04 / 0.68, 0.64 / 0.68]])
    np.testing.assert_allclose(yes_bias(np.array([[0.2]]), [np.log(4.0)]), [[0.5]])


def test_config_bias_and_temperature_reach_the_probabilities() -> None:
    plain = Classifier(load_config({**BASE, "search": None}), CharBackend())
    data = {**BASE, "labels": {"positive": {"completions": [" positive"], "bias": 1.5},
                               "negative": {"completions": [" negative", " awful"]}},
            "scoring": {"calibration": "contextual", "temperature": 2.0}}
    biased = Classifier(load_config(data), CharBackend())
    raw = plain.raw_scores(TEXTS[:3])
    expected = label_bias(plain.probabilities(raw), [1.5, 0.0], 2.0)
    np.testing.assert_allclose(biased.probabilities(raw), expected)
    assert not np.allclose(expected, plain.probabilities(raw))
    # calibrate=False is the model's own view, without bias or temperature
    np.testing.assert_allclose(biased.probabilities(raw, calibrate=False), plain.probabilities(raw, calibrate=False))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("labels.positive.bias", "high", "labels.positive.bias: expected a number"),
    ("scoring.temperature", 0, "scoring.temperature: expected a number between 0.001 and 1000"),
    ("search.completions", {"neutral": [" meh"]}, "search.completions.neutral: not a label of this config"),
    ("search.prompts", ["no placeholder"], "search.prompts.0: the template must contain {text}"),
    ("search.prompt", ["x {text}"], "search.prompt: unknown key"),
])
def test_bad_bias_temperature_and_search_are_located_errors(key: str, value: object, message: str) -> None:
    data = json.loads(json.dumps(BASE))
    *path, last = key.split(".")
    node = data
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(Exception, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_config(data)


def test_written_config_loads_back_the_same(tmp_path: Path) -> None:
    config = load_config(BASE)
    biased = tuple(replace(label, bias=b) for label, b in zip(config.labels, (0.25, -0.25), strict=True))
    config = replace(config, labels=biased, scoring=replace(config.scoring, temperature=0.5))
    path = tmp_path / "x.yaml"
    path.write_text(config_yaml(config, "a comment\nover two lines"))
    assert path.read_text().startswith("# a comment\n# over two lines\n")
    assert replace(load_config(path), source="<mapping>", name=config.name) == config


@pytest.mark.parametrize("shipped", ["entailment", "sentiment_chat", "support_intents"])
def test_written_config_keeps_chat_prompts_examples_and_label_files(shipped: str, tmp_path: Path) -> None:
    """Chat messages, few-shot examples (inline or from a file) and labels files survive a write and a load."""
    config = load_config(shipped)
    path = tmp_path / "x.yaml"
    path.write_text(config_yaml(config))
    loaded = load_config(path)
    assert replace(loaded, source=config.source) == config


# --------------------------------------------------------------------------- the search's maths


def scores_and_search(backend: CharBackend | None = None, texts: list[str] = TEXTS,
                      labels: list[str] = LABELS) -> tuple[list[PromptScores], Search]:
    config = load_config(BASE)
    per_label = candidates(config)
    prompts = [config.prompt, *config.search.prompts]
    scores = [prompt_scores(config, backend or CharBackend(length_penalty=1.0), p, per_label, texts) for p in prompts]
    style_sets = [styles(config, per_label) for _ in prompts]
    y = np.array([config.label_names.index(label) for label in labels])
    return scores, Search(scores, y, settings_for(len(prompts), style_sets, ["sum", "mean"], ["logsumexp"]),
                          [[[(c,) for c in found[:3]] for found in per_label]] * len(prompts), folds=4)


def test_every_candidate_is_scored_in_one_pass_per_prompt() -> None:
    backend = CharBackend()
    scores, _ = scores_and_search(backend)
    # each prompt: the texts once, "N/A", "", "[MASK]" (PMI's neutral text "" is one of them: cached) and
    # domain calibration's 20 random-word inputs
    assert backend.texts == 2 * (len(TEXTS) + 3 + 20)
    config = load_config(BASE)
    assert {c for _, c in scores[0].columns} >= {" positive", " good", " negative", " awful", " Positive", "positive"}
    assert len(scores[0].columns) == sum(len(found) for found in candidates(config))


@pytest.mark.parametrize("calibration", ["none", "contextual", "domain", "batch", "pmi"])
@pytest.mark.parametrize("normalize", ["sum", "mean", "chars"])
def test_search_maths_equal_what_the_written_config_computes(calibration: str, normalize: str) -> None:
    """A setting's log-probabilities in the search are the chosen config's own, bias and temperature included:
    without them bit for bit (one pipeline), with them to float rounding (the search keeps log-probabilities)."""
    scores, _ = scores_and_search()
    setting = Setting(1, "custom", ((" good", " Positive"), (" awful",)), normalize, "logsumexp", calibration, True)
    bias, temperature = (0.3, -0.3), 0.7
    config = chosen_config(load_config(BASE), scores[1].prompt, setting, bias, temperature)
    clf = Classifier(config, CharBackend(length_penalty=1.0))
    clf.calibration_state.domain_inputs = scores[1].domain_inputs  # what TuneResult.write puts in its file
    raw = clf.raw_scores(TEXTS)  # 32 texts: one batch-calibration chunk, as in the search
    trace = clf.calibrator.trace(raw)
    assert np.array_equal(label_log_probs(scores[1], setting), safe_log(trace.calibrated))
    np.testing.assert_allclose(apply_fit(label_log_probs(scores[1], setting), bias, temperature),
                               np.log(clf.probabilities(raw)), rtol=1e-9, atol=1e-12)


def test_tune_searches_every_label_free_method_a_registered_one_too() -> None:
    """The search's methods are the registry's label-free ones: a method registered at run time is searched
    (and can win), ``fitted`` (it needs labels) is not, and the report lists them."""
    from toy_calibration import Shrink

    from lpclassify import calibration

    calibration.register(Shrink())
    try:
        assert label_free_methods() == ("none", "contextual", "domain", "batch", "pmi", "shrink")
        _, search = scores_and_search()
        searched = {(s.calibration, s.fit) for s in search.settings}
        assert searched == {(m, fit) for m in label_free_methods() for fit in (False, True)}
        shrink = next(s for s in search.settings if s.calibration == "shrink" and not s.fit)
        plain = replace(shrink, calibration="none")
        # the toy method's own maths ran: halfway to uniform
        np.testing.assert_allclose(np.exp(search.log_probs(shrink)), 0.5 * np.exp(search.log_probs(plain)) + 0.25)
        result = tune(load_config(BASE), CharBackend(length_penalty=1.0), TEXTS, LABELS, folds=4)
        assert result.as_dict()["methods_searched"] == ["contextual", "none", "domain", "batch", "pmi", "shrink"]
    finally:
        calibration.unregister("shrink")


def test_folds_are_stratified_and_deterministic() -> None:
    y = np.array([0] * 10 + [1] * 5)
    folds = folds_of(y, 5)
    assert np.array_equal(folds, folds_of(y, 5))
    for fold in range(5):
        assert sorted(y[folds == fold].tolist()) == [0, 0, 1]


@pytest.mark.slow
def test_the_estimate_comes_from_held_out_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each outer fold's winner is chosen, and its bias fitted, without that fold's rows; it is scored on them."""
    _, search = scores_and_search()
    seen: list[set[int]] = []
    fitted_on: list[set[int]] = []
    select, predict = Search.select, Search.predict_held_out

    def spy_select(self: Search, rows: np.ndarray, progress: object = None) -> object:
        seen.append(set(rows.tolist()))
        return select(self, rows, progress)  # type: ignore[arg-type]

    def spy_predict(self: Search, setting: Setting, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        fitted_on.append(set(train.tolist()))
        return predict(self, setting, train, test)

    monkeypatch.setattr(Search, "select", spy_select)
    monkeypatch.setattr(Search, "predict_held_out", spy_predict)
    estimate, outer = nested_estimate(search)
    assert len(outer) == 4 and sorted(i for fold in outer for i in fold.test_rows) == list(range(len(TEXTS)))
    for fold, rows, train in zip(outer, seen, fitted_on, strict=True):
        assert rows.isdisjoint(fold.test_rows) and train.isdisjoint(fold.test_rows)
        assert rows | set(fold.test_rows) == set(range(len(TEXTS)))
    # the estimate is the held-out folds' accuracy, pooled
    held = sum(f.held_out.accuracy * len(f.test_rows) for f in outer) / len(TEXTS)
    assert estimate.accuracy == pytest.approx(held)


def noise_search(seed: int) -> Search:
    """Scores and labels drawn independently: nothing to learn."""
    rng = np.random.default_rng(seed)
    n, m = 60, 12
    columns = tuple((i % 2, f" w{i}") for i in range(m))
    references = {text: (rng.normal(size=m), np.ones(m, dtype=np.int64)) for text in ("N/A", "", "[MASK]")}
    scores = PromptScores("{text}", columns, rng.normal(size=(n, m)), np.ones((n, m), dtype=np.int64),
                          references, ("N/A", "", "[MASK]"), None)
    y = rng.integers(0, 2, size=n)
    per_label = tuple(tuple(c for owner, c in columns if owner == k) for k in range(2))
    style_sets = {f"single{i}": ((per_label[0][i],), (per_label[1][i],)) for i in range(6)}
    return Search([scores], y, settings_for(1, [style_sets], ["sum"], ["logsumexp"], ["none", "contextual", "pmi"]),
                  [[[(c,) for c in found] for found in per_label]], folds=5)


def looks_like_chance(accuracies: list[float]) -> bool:
    """Two labels, 60 rows per seed: the mean over seeds near 0.5 and no seed far from it, either way."""
    return abs(float(np.mean(accuracies)) - 0.5) <= 0.08 and all(abs(a - 0.5) <= 0.15 for a in accuracies)


def test_on_noise_the_estimate_is_chance_while_a_leaky_one_is_optimistic() -> None:
    """Labels unrelated to the texts: the nested estimate (what tune reports) is chance on every seed, neither
    above nor below; a leaky estimate (the winner's score on the rows it was chosen on) fails the same check."""
    searches = [noise_search(seed) for seed in range(3, 9)]
    honest = [nested_estimate(search)[0].accuracy for search in searches]
    leaky = [search.select(np.arange(len(search.y)))[1].accuracy for search in searches]
    assert looks_like_chance(honest), honest
    assert not looks_like_chance(leaky), leaky
    assert all(lk >= h for lk, h in zip(leaky, honest, strict=True))


@pytest.mark.slow
def test_tune_on_a_fake_backend_finds_the_informative_setting() -> None:
    result = tune(load_config(BASE), CharBackend(length_penalty=1.0), TEXTS, LABELS, folds=4)
    assert result.estimate.accuracy >= 0.7 and result.n_examples + result.n_demo_pool == len(TEXTS)
    assert result.config.scoring.calibration in label_free_methods()
    assert result.config.search == load_config(BASE).search  # kept, so the file can be tuned again
    clf = Classifier(result.config, CharBackend(length_penalty=1.0))
    accuracy = np.mean([p.label == y for p, y in zip(clf.classify_many(TEXTS), LABELS, strict=True)])
    assert accuracy >= result.estimate.accuracy - 0.2


def test_tune_refuses_what_it_cannot_do() -> None:
    with pytest.raises(Exception, match="at least 10 labelled examples"):
        tune(load_config(BASE), CharBackend(), TEXTS[:4], LABELS[:4])
    with pytest.raises(Exception, match="neutral"):
        tune(load_config(BASE), CharBackend(), TEXTS, ["neutral"] * len(TEXTS))
    with pytest.raises(Exception, match="at least two labels"):
        tune(load_config(BASE), CharBackend(), TEXTS, ["positive"] * len(TEXTS))
    multi = load_config({"labels": ["a", "b"], "decision": {"mode": "multi"}})
    with pytest.raises(Exception, match="single-label"):
        tune(multi, CharBackend(), TEXTS, ["a"] * len(TEXTS))


# --------------------------------------------------------------------------- the command


def fake_loader(config, request):  # type: ignore[no-untyped-def]
    return Classifier(request.configured(config), CharBackend(length_penalty=1.0))


@pytest.mark.slow
def test_tune_command_writes_a_commented_config_and_a_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(config_yaml(load_config(BASE)))
    data = write_jsonl(tmp_path / "dev.jsonl", TEXTS, LABELS)
    out, report = tmp_path / "best.yaml", tmp_path / "r.json"
    status = cli.main(["tune", "-c", str(base), "-i", str(data), "-o", str(out), "--report", str(report),
                       "--folds", "4", "--max-shots", "0"], load_classifier=fake_loader)
    assert status == 0
    text = out.read_text()
    assert text.startswith("# Written by `lpclassify tune`") and "Estimated accuracy" in text
    tuned = load_config(out)
    document = json.loads(report.read_text())
    assert document["estimate"]["accuracy"] == pytest.approx(float(text.split("Estimated accuracy: ")[1]
                                                                    .split("%")[0]) / 100, abs=1e-3)
    assert document["chosen"]["calibration"] == tuned.scoring.calibration
    # the base config as it was (contextual calibration) is measured on the same examples
    base_setting = Setting(0, "config", tuple(label.completions for label in load_config(BASE).labels), "sum",
                           "logsumexp", "contextual", False)
    _, search = scores_and_search(texts=TEXTS, labels=LABELS)
    assert document["baseline"]["accuracy"] == pytest.approx(search.cv_score(base_setting,
                                                                             np.arange(len(TEXTS))).accuracy)
    assert len(document["outer_folds"]) == 4
    assert document["methods_searched"] == ["contextual", "none", "domain", "batch", "pmi"]
    assert "estimated accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_a_chosen_domain_calibration_is_written_with_its_inputs(tmp_path: Path) -> None:
    """Domain calibration's inputs come from the examples; the written config names a calibration file
    holding them, and loads back to the very classifier tune evaluated."""
    from lpclassify.tuning.run import tuning_domain_inputs

    result = tune(load_config(BASE), CharBackend(length_penalty=1.0), TEXTS, LABELS, folds=4)
    scoring = replace(result.config.scoring, calibration="domain")
    domain = replace(result, setting=replace(result.setting, calibration="domain"),
                     config=replace(result.config, scoring=scoring), domain_inputs=tuple(tuning_domain_inputs(TEXTS)))
    written = domain.write(tmp_path / "best.yaml", "test")
    assert [p.name for p in written] == ["best.yaml", "best.calibration.json"]
    loaded = Classifier(load_config(tmp_path / "best.yaml"), CharBackend(length_penalty=1.0))
    assert loaded.config.scoring.calibration_file == "best.calibration.json"
    assert json.loads((tmp_path / "best.calibration.json").read_text())["direction"] == "direct"
    # the YAML keeps the bias and temperature to its own precision: compare with the loaded ones
    plain = replace(loaded.config, scoring=replace(loaded.config.scoring, calibration_file=None))
    direct = replace(domain, config=plain).classifier(CharBackend(length_penalty=1.0))
    raw = direct.raw_scores(TEXTS)
    assert np.array_equal(loaded.probabilities(raw), direct.probabilities(raw))
    assert not np.array_equal(direct.probabilities(raw), direct.probabilities(raw, calibrate=False))


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "best.json"], "name it with .yaml"),
    (["--folds", "20"], "--folds must be between 2 and half the examples"),
    (["--label-field", "nope"], "no field 'nope'"),
])
def test_tune_command_errors_are_one_line_and_leave_no_file(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            args: list[str], message: str) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(config_yaml(load_config(BASE)))
    data = write_jsonl(tmp_path / "dev.jsonl", TEXTS, LABELS)
    argv = ["tune", "-c", str(base), "-i", str(data), "-o", str(tmp_path / "best.yaml"), *args]
    argv = [str(tmp_path / a) if a == "best.json" else a for a in argv]
    assert cli.main(argv, load_classifier=fake_loader) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "best.yaml").exists() and not (tmp_path / "best.json").exists()


@pytest.mark.model
@pytest.mark.slow
def test_tune_on_a_real_model_beats_chance_honestly(tmp_path: Path, smollm2: str) -> None:
    from conftest import load_shared

    out = tmp_path / "tuned.yaml"
    status = cli.main(["tune", "-c", str(QUESTIONS / "questions.yaml"), "-i", str(QUESTIONS / "questions.jsonl"),
                       "--limit", "36", "--folds", "3", "-o", str(out), "--model", smollm2, "--threads", "1"],
                      load_classifier=load_shared)
    assert status == 0
    tuned = load_config(out)
    assert tuned.model == smollm2
    estimate = float(out.read_text().split("# Estimated accuracy: ")[1].split("%")[0])
    assert estimate > 100 / 6  # six classes: better than chance, on folds the choice never saw


def test_calibrate_writes_the_fit_into_a_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`calibrate --write-config`: the config's bias and temperature give the fitted calibration's probabilities."""
    base = tmp_path / "base.yaml"
    base.write_text(config_yaml(load_config({**BASE, "scoring": {"calibration": "none"}})))
    data = write_jsonl(tmp_path / "dev.jsonl", TEXTS, LABELS)
    out = tmp_path / "calibrated.yaml"
    assert cli.main(["calibrate", "-c", str(base), "-i", str(data), "--write-config", str(out)],
                    load_classifier=fake_loader) == 0
    assert "temperature" in capsys.readouterr().out
    written = load_config(out)
    assert written.scoring.calibration == "none" and written.scoring.temperature != 1.0
    assert any(label.bias for label in written.labels)
    fitted = Classifier(load_config(base), CharBackend(length_penalty=1.0))
    fitted.fit(TEXTS, LABELS)
    from_file = Classifier(written, CharBackend(length_penalty=1.0))
    raw = fitted.raw_scores(TEXTS)
    np.testing.assert_allclose(from_file.probabilities(raw), fitted.probabilities(raw), atol=1e-5)
    assert cli.main(["calibrate", "-c", str(base), "-i", str(data)], load_classifier=fake_loader) == 2
    assert "say what to write" in capsys.readouterr().err


def test_fit_thresholds_maximizes_each_labels_f1() -> None:
    from lpclassify.calibration.thresholds import best_threshold, fit_thresholds, label_sets

    p = np.array([[0.30, 0.9], [0.25, 0.8], [0.10, 0.7], [0.05, 0.6]])
    truth = label_sets([["a", "b"], ["a", "b"], "b", []], ["a", "b"])
    assert truth.tolist() == [[True, True], [True, True], [False, True], [False, False]]
    a, b = fit_thresholds(p, truth)
    assert 0.10 < a <= 0.25 and 0.6 < b <= 0.7  # a's yes never reaches 0.5, yet it separates perfectly
    assert best_threshold(np.array([0.2, 0.4]), np.array([False, False]), default=0.42) == 0.42
    with pytest.raises(ValueError, match="'c'"):
        label_sets(["c"], ["a", "b"])


def test_calibrate_fits_multi_label_thresholds_into_the_config(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    multi = {"prompt": "Text: {text}\nAbout {label}?", "labels": ["complaint", "review"],
             "decision": {"mode": "multi", "multi": {"yes": [" yes neg"], "no": [" no"]}}}
    base = tmp_path / "multi.yaml"
    base.write_text(config_yaml(load_config(multi)))
    texts = [f"bad thing {i}" for i in range(6)] + [f"good thing {i}" for i in range(6)]
    labels = [["complaint", "review"]] * 6 + [["review"]] * 6
    data = tmp_path / "multi.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)))
    out = tmp_path / "multi.tuned.yaml"
    assert cli.main(["calibrate", "-c", str(base), "-i", str(data), "--write-config", str(out)],
                    load_classifier=fake_loader) == 0
    tuned = load_config(out)
    clf = Classifier(tuned, CharBackend(length_penalty=1.0))
    assert [set(p.labels) for p in clf.classify_many(texts)] == [set(y) for y in labels]
    before = Classifier(load_config(base), CharBackend(length_penalty=1.0)).classify_many(texts)
    assert [set(p.labels) for p in before] != [set(y) for y in labels]  # the default 0.5 did worse
    assert cli.main(["calibrate", "-c", str(base), "-i", str(data), "-o", str(tmp_path / "c.json")],
                    load_classifier=fake_loader) == 2
    assert "--write-config" in capsys.readouterr().err


def test_the_config_writer_knows_every_config_field() -> None:
    """tune and calibrate --write-config write configs through config/dump.py: a field added to the schema must be
    written too (or the written config silently loses it). This lists the fields the writer handles."""
    from dataclasses import fields

    from lpclassify.config import Config, Label, Scoring

    handled = {"name", "description", "model", "prompt", "labels", "scoring", "decision", "runtime", "search", "source",
               "examples", "example_separator"}
    assert {f.name for f in fields(Config)} == handled
    assert {f.name for f in fields(Label)} == {"name", "completions", "description", "threshold", "bias"}
    assert {f.name for f in fields(Scoring)} == {"normalize", "aggregate", "calibration", "content_free", "direction",
                                                 "calibration_file", "temperature", "search", "tolerance", "rerank"}


@pytest.mark.slow
def test_tune_keeps_the_base_configs_comments_and_names_the_prompt_as_the_file_does(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(
        "# Sentiment of a review.\n#\n# Written by hand.\nname: base\n\n"
        "prompt: |\n  Review: {text}\n  Sentiment:\n\n"
        "# Each label's words.\nlabels:\n  positive:\n    completions: [\" positive\"]\n"
        "    description: the writer liked it   # what a person would say\n"
        "  negative:\n    completions: [\" negative\", \" awful\"]\n\n"
        "scoring:\n  # how a label's words count\n  normalize: sum\n  calibration: contextual  # divides out a bias\n"
        "search:\n  prompts: [\"Text: {text}\\nIt was\"]\n", encoding="utf-8")
    data = write_jsonl(tmp_path / "dev.jsonl", TEXTS, LABELS)
    out = tmp_path / "best.yaml"
    assert cli.main(["tune", "-c", str(base), "-i", str(data), "-o", str(out), "--folds", "4"],
                    load_classifier=fake_loader) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    tuned = load_config(out)
    # the base config's opening comments, after what tune says of the file
    assert text.startswith("# Written by `lpclassify tune`")
    assert "#\n# Sentiment of a review.\n#\n# Written by hand.\n" in text
    assert "# Each label's words.\nlabels:" in text and "  # how a label's words count\n  normalize:" in text
    assert "description: the writer liked it  # what a person would say" in text  # the value is unchanged
    # an end-of-line comment on a value tune changed would describe the old one: it goes
    assert ("# divides out a bias" in text) == (tuned.scoring.calibration == "contextual")
    # the chosen prompt is named the same way on the terminal and in the file
    [file_line] = [line for line in text.splitlines() if line.startswith("# Chosen: ")]
    [terminal_line] = [line for line in printed.splitlines() if line.startswith("chosen: ")]
    chosen = file_line.removeprefix("# Chosen: ").rstrip(",.")
    assert terminal_line.removeprefix("chosen: ").startswith(chosen)
    assert chosen.startswith(("prompt 1 of 2,", "prompt 2 of 2,"))
    assert load_config(out) == tuned  # the comments change nothing


# --------------------------------------------------------------------------- the selection rule


def rule_search(base: bool, *, clear: bool = False, refine: tuple[str, ...] = ()) -> tuple[Search, Setting]:
    """Two labels, 40 rows. The config's own completions (" a0"/" a1") are right on rows 0-23; a noisy
    candidate (" b0"/" a1": the same scores but on row 24) is right on one row more and wrong on none more;
    a clearly better one (" c0"/" c1") is right on rows 1-35: 12 rows more, one fewer. ``refine``: label 0's
    completions the refinement tries (" d0": " a0" but right on rows 24, 26, 28 and 30)."""
    n = 40
    y = np.arange(n) % 2

    def column_pair(right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sure = np.where(right, y, 1 - y)  # the label each row's scores favour
        return np.where(sure == 0, 0.0, -1.0), np.where(sure == 1, 0.0, -1.0)

    rows = np.arange(n)
    a0, a1 = column_pair(rows < 24)
    b0 = a0.copy()
    b0[24] = 5.0  # row 24 is label 0: now right
    d0 = a0.copy()
    d0[[24, 26, 28, 30]] = 5.0
    c0, c1 = column_pair((rows >= 1) & (rows < 36))
    columns = ((0, " a0"), (1, " a1"), (0, " b0"), (0, " c0"), (1, " c1"), (0, " d0"))
    logprobs = np.stack([a0, a1, b0, c0, c1, d0], axis=1)
    scores = PromptScores("{text}", columns, logprobs, np.ones_like(logprobs, dtype=np.int64))
    own = Setting(0, "config", ((" a0",), (" a1",)), "sum", "logsumexp", "none", False)
    candidates = [own, replace(own, verbalizer="noisy", completions=((" b0",), (" a1",)))]
    if clear:
        candidates.append(replace(own, verbalizer="clear", completions=((" c0",), (" c1",))))
    options = [[(" a0",), *((c,) for c in refine)], []]
    settings = candidates[:1] if refine else candidates
    return Search([scores], y, settings, [options], folds=5, base=own if base else None), own


def test_one_row_of_difference_is_exactly_one_standard_error() -> None:
    from lpclassify.tuning.search import Score, beats, paired_margin

    def score(correct: list[bool]) -> Score:
        return Score(float(np.mean(correct)), 0.0, np.array(correct))

    base = score([True] * 24 + [False] * 16)
    mean, se = paired_margin(score([True] * 25 + [False] * 15), base)
    assert mean == pytest.approx(se) == pytest.approx(1 / 40)
    assert not beats(score([True] * 25 + [False] * 15), base)  # one row won, none lost: no evidence
    assert beats(score([True] * 26 + [False] * 14), base)  # two won, none lost
    assert not beats(score([False] + [True] * 26 + [False] * 13), base)  # three won, one lost: within noise
    assert not beats(base, base)


def test_a_candidate_that_wins_by_one_row_does_not_replace_the_config_a_clearly_better_one_does() -> None:
    rows = np.arange(40)
    search, own = rule_search(base=False)
    assert search.select(rows)[0].verbalizer == "noisy"  # the plain maximum takes the one-row win
    search, own = rule_search(base=True)
    chosen, score = search.select(rows)
    assert chosen == own and score.accuracy == pytest.approx(24 / 40)
    search, own = rule_search(base=True, clear=True)
    assert search.select(rows)[0].verbalizer == "clear"


def test_verbalizer_refinement_and_the_nested_estimate_follow_the_same_rule() -> None:
    rows = np.arange(40)
    # refinement: swapping label 0's completion for " b0" wins one row (kept as it was); " d0" wins four
    search, own = rule_search(base=True, refine=(" b0",))
    assert search.select(rows)[0] == own
    search, own = rule_search(base=True, refine=(" b0", " d0"))
    chosen, score = search.select(rows)
    assert chosen.completions == ((" d0",), (" a1",)) and chosen.verbalizer == "config+refined"
    assert score.accuracy == pytest.approx(28 / 40)
    # the nested estimate's selections run the rule: every outer fold keeps the config
    search, own = rule_search(base=True)
    _, outer = nested_estimate(search)
    assert [fold.chosen for fold in outer] == [own] * 5
    search, _ = rule_search(base=False)
    assert any(fold.chosen.verbalizer == "noisy" for fold in nested_estimate(search)[1])
