"""Ray Data scale-out: every row equals a single-process run, bit for bit, in input order.

The predictor is tested on its own first (no Ray: what the driver ships is all an actor needs),
then on a real local Ray (``ray.init(num_cpus=2)``) and on a two-node cluster on this machine
(``ray.cluster_utils.Cluster``). The Ray tests are skipped, saying why, only when the ``ray``
extra is not installed (``pip install -e '.[test,ray]'``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CONFIGS, cached_backend, load_shared, model_path

from lpclassify import Classifier
from lpclassify.ray import PREDICTION_COLUMNS, Predictor, prediction_columns, prepare

pytestmark = pytest.mark.model
HAVE_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="the ray extra is not installed: pip install -e '.[test,ray]'")

POSITIVE = ["An absolute joy from start to finish.", "Wonderful, moving and funny.", "I loved every minute.",
            "A triumph of a film.", "Sharp writing and a great cast."]
NEGATIVE = ["A tedious mess.", "Dull, lifeless and far too long.", "I want my two hours back.",
            "Clumsy and boring.", "The worst film of the year."]
# 45 texts: batch calibration's chunks of 32 are then 32 + 13 (both calibrated, neither aligned to 15-row blocks)
TEXTS = [f"{text} ({i})" for i in range(9) for text in (POSITIVE[i % 5], NEGATIVE[i % 5], POSITIVE[(i + 2) % 5],
                                                        NEGATIVE[(i + 3) % 5], POSITIVE[(i + 4) % 5])]


def classifier(calibration: str, **scoring: Any) -> Classifier:
    path = model_path("smollm2")
    return Classifier.from_config({**yaml_config(), "scoring": {"calibration": calibration, **scoring}},
                                  str(path), backend=cached_backend(path, 512, threads=1), n_ctx=512)


def yaml_config() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((CONFIGS / "sentiment.yaml").read_text(encoding="utf-8"))
    data.pop("scoring", None)
    data.pop("name", None)
    return data


def records() -> list[dict[str, Any]]:
    # a `label` column (gold labels, say) clashes with the prediction's: it is kept as input_label
    return [{"id": i, "text": text, "label": i % 2} for i, text in enumerate(TEXTS)]


def expected_rows(clf: Classifier) -> list[dict[str, Any]]:
    rows = []
    for record, p in zip(records(), clf.classify_many(TEXTS), strict=True):
        row = {"id": record["id"], "text": record["text"], "input_label": record["label"], "label": p.label,
               "labels": ";".join(p.labels), "abstained": p.abstained, "reason": p.reason,
               "truncated": p.truncated, "chunks": p.n_chunks}
        row.update({f"prob_{name}": p.probabilities[name] for name in clf.config.label_names})
        rows.append(row)
    return rows


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A Ray row with numpy scalars as Python values (float64 -> float keeps every bit)."""
    return {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}


# --------------------------------------------------------------------------- the predictor alone


@pytest.mark.parametrize("calibration", ["contextual", "pmi", "none"])
def test_the_predictor_needs_nothing_but_the_snapshot(calibration: str) -> None:
    driver = classifier(calibration)
    snapshot = prepare(driver)
    assert set(snapshot.references) == {"contextual": {"N/A", "", "[MASK]"}, "pmi": {""}, "none": set()}[calibration]
    predictor = Predictor(snapshot, backend=driver.backend)
    batch = {key: np.array([r[key] for r in records()], dtype=object) for key in ("id", "text")}
    out = predictor(batch)
    # the actor scored no reference text and reads no cache: everything came with the snapshot
    assert predictor.classifier.calibrator.references.computed == 0
    assert predictor.classifier.calibrator.references.disk_hits == 0
    expected = driver.classify_many(TEXTS)
    assert list(out["label"]) == [p.label for p in expected]
    for name in driver.config.label_names:
        assert out[f"prob_{name}"].tolist() == [p.probabilities[name] for p in expected]


def test_the_calibration_file_is_read_in_the_driver_only(tmp_path: Path) -> None:
    fitted = classifier("none")
    fitted.fit(TEXTS[:10], [0 if i % 5 in (0, 2, 4) else 1 for i in range(10)])
    fitted.save_calibration(tmp_path / "cal.json")
    (tmp_path / "conf.yaml").write_text(json.dumps({**yaml_config(), "scoring": {
        "calibration": "fitted", "calibration_file": "cal.json"}}), encoding="utf-8")
    path = model_path("smollm2")
    driver = Classifier.from_config(tmp_path / "conf.yaml", str(path), backend=cached_backend(path, 512, threads=1),
                                    n_ctx=512)
    snapshot = prepare(driver)
    (tmp_path / "cal.json").unlink()  # a worker on another node has no such file
    assert snapshot.config.scoring.calibration_file is None and snapshot.state.fitted is not None
    predictor = Predictor(snapshot, backend=driver.backend)
    out = predictor({"text": np.array(TEXTS[:12], dtype=object)})
    assert out["prob_positive"].tolist() == [p.probabilities["positive"] for p in driver.classify_many(TEXTS[:12])]


def test_a_template_with_several_fields_reads_their_columns() -> None:
    path = model_path("smollm2")
    pair = {"prompt": "Premise: {premise}\nHypothesis: {hypothesis}\nTrue or false? Answer:",
            "labels": {"true": {"completions": [" true"]}, "false": {"completions": [" false"]}}}
    driver = Classifier.from_config(pair, str(path), backend=cached_backend(path, 512, threads=1), n_ctx=512)
    predictor = Predictor(prepare(driver), backend=driver.backend)
    pairs = [{"premise": POSITIVE[i], "hypothesis": NEGATIVE[(i + k) % 5]} for i in range(5) for k in range(2)]
    out = predictor({"id": np.arange(10), **{name: np.array([p[name] for p in pairs], dtype=object)
                                             for name in ("hypothesis", "premise")}})
    assert out["prob_true"].tolist() == [p.probabilities["true"] for p in driver.classify_many(pairs)]
    with pytest.raises(KeyError, match="no column 'hypothesis'"):
        predictor({"premise": np.array(["a"], dtype=object), "text": np.array(["b"], dtype=object)})


def test_prediction_columns_keep_input_columns_and_rename_clashes() -> None:
    from lpclassify.decision import Prediction

    batch = {"label": np.array([1]), "input_label": np.array(["x"]), "prob_a": np.array([0.5]), "k": np.array([3])}
    out = prediction_columns(batch, [Prediction("a", {"a": 0.75, "b": 0.25}, labels=("a",))], ["a", "b"])
    assert list(out) == ["input_input_label", "input_label", "input_prob_a", "k", "label", "labels", "prob_a",
                         "prob_b", "abstained", "reason", "truncated", "chunks"]
    assert out["input_input_label"].tolist() == [1] and out["input_label"].tolist() == ["x"]
    assert set(PREDICTION_COLUMNS) < set(out)


# --------------------------------------------------------------------------- real Ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("calibration", ["contextual", "pmi", "batch"])
def test_a_local_ray_gives_the_single_process_rows(local_ray: None, calibration: str) -> None:
    import ray

    from lpclassify.ray import classify_dataset

    driver = classifier(calibration)
    ds = ray.data.from_items(records(), override_num_blocks=3)  # blocks of 15 rows: not the chunks of 32
    out = classify_dataset(ds, driver, workers=2, threads=1)
    rows = [plain(row) for row in out.take_all()]
    assert rows == expected_rows(driver)  # columns, order, labels and probabilities bit for bit


@needs_ray
@pytest.mark.slow
def test_a_two_node_cluster_gives_the_single_process_rows(tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from lpclassify.ray import classify_dataset

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        driver = classifier("contextual")
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
        out = classify_dataset(ray.data.read_json(str(source)), driver, workers=2, threads=1)
        rows = [plain(row) for row in out.take_all()]
        assert rows == expected_rows(driver)
    finally:
        ray.shutdown()
        cluster.shutdown()


@needs_ray
@pytest.mark.slow
def test_classify_with_ray_writes_what_one_process_writes(tmp_path: Path) -> None:
    import ray

    from lpclassify import cli

    if ray.is_initialized():
        ray.shutdown()
    lines = [json.dumps(r) for r in records()]
    lines.insert(7, "{not json")  # --errors skip sets it aside in its place, as without Ray
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["classify", "-c", str(CONFIGS / "sentiment.yaml"), "--model", str(model_path("smollm2")),
              "-i", str(source), "--errors", "skip", "--no-progress"]
    assert cli.main([*common, "-o", str(tmp_path / "one.jsonl"), "--threads", "1"], load_classifier=load_shared) == 0
    assert cli.main([*common, "-o", str(tmp_path / "ray.jsonl"), "--ray", "--workers", "2", "--threads", "1"],
                    load_classifier=load_shared) == 0
    assert not ray.is_initialized()  # the run's own Ray is gone
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == len(TEXTS)
    assert (tmp_path / "ray.rejected.jsonl").read_text() == (tmp_path / "one.rejected.jsonl").read_text()


def test_workers_needs_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lpclassify import cli

    code = cli.main(["classify", "-c", "sentiment", "--model", str(model_path("smollm2")), "--workers", "2", "x"],
                    load_classifier=load_shared)
    assert code == 2 and "--workers needs --ray" in capsys.readouterr().err
