"""Classify a Ray Dataset on an actor pool (one model per actor), row for row as one process would.

>>> import ray                                                                   # doctest: +SKIP
>>> from lpclassify.ray import classify_dataset                                  # doctest: +SKIP
>>> ds = ray.data.read_json("news.jsonl")                                        # doctest: +SKIP
>>> out = classify_dataset(ds, "topic", workers=4, threads=2)                    # doctest: +SKIP
>>> out.write_parquet("labelled/")                                               # doctest: +SKIP

The output keeps every input column (one named like a prediction column is kept as
``input_<name>``, as the CLI does) and adds the CSV output's columns: ``label`` (None when it
abstained), ``labels`` (";"-joined), ``prob_<label>`` per label (float64, not rounded),
``abstained``, ``reason``, ``truncated`` and ``chunks``. Rows come back in input order.

Why a row equals ``Classifier.classify_many`` on one process, bit for bit:

* the engine's scores of a text do not depend on the texts it shares a decode with, nor on
  threads or ``runtime.batch_size`` (``tests/test_backend.py``), so any actor scores any row
  exactly as one process would;
* everything that needs the model but not the text is computed once, in the driver
  (:func:`prepare`): the reference scores the configured calibration needs (content-free inputs,
  PMI's neutral text, domain inputs) and the calibration state (fitted parameters, domain prior,
  the config's calibration file, read where the config is). A :class:`Snapshot` carries them
  to every actor, which restores them before its first row and never scores a reference text
  nor reads the calibration file (a remote node need not have it);
* ``scoring.calibration: batch`` divides each chunk of ``max(4 x runtime.batch_size, 32)``
  consecutive texts by its own mean, as ``classify_many`` does. :func:`classify_dataset` cuts the
  dataset into blocks of exactly that many rows, in input order (Ray's strict streaming
  repartition, with order preserved), and hands each actor call one such block, so the chunks
  are the single process's whatever the input's blocks were. A ``batch_size`` that is not a
  multiple of the chunk, or a Ray without ``repartition(..., strict=True)``, calibrates each
  Ray batch in chunks of its own: rows then differ from one process's where a chunk straddles a
  cut (a warning says so). Every other method is independent of how the dataset is cut.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import BATCH_CHUNK, CalibrationState
from .classifier import Classifier
from .config import Config, load_config
from .errors import ModelError
from .inputs import Input

if TYPE_CHECKING:
    import ray.data

    from .backends.base import Backend
    from .decision import Prediction

log = logging.getLogger("lpclassify")

# The columns a prediction adds (the CSV writer's, with prob_<label> per label in their place).
PREDICTION_COLUMNS = ("label", "labels", "abstained", "reason", "truncated", "chunks")


@dataclass(frozen=True)
class Snapshot:
    """What every actor needs besides its own model: computed once in the driver, shipped by value.

    ``config`` has the runtime overrides applied and no calibration file (``state`` holds what
    it said); ``model`` is what each actor loads (a registry name, resolved on its own node, or
    a path); ``model_size`` is the driver's file size, which an actor's file must match.
    """

    config: Config
    model: str
    model_size: int | None
    references: dict[str, tuple[np.ndarray, np.ndarray]]
    state: CalibrationState

    @property
    def chunk(self) -> int:
        """Texts per ``classify_many`` chunk: what batch calibration averages over."""
        size = max(1, self.config.runtime.batch_size) * 4
        return max(size, BATCH_CHUNK) if self.config.scoring.calibration == "batch" else size


def prepare(config: str | Path | Mapping[str, Any] | Config | Classifier, model: str | None = None,
            **runtime: Any) -> Snapshot:
    """Compute, in this process, what every actor shares: the reference scores and calibration state.

    ``config`` is a config (path, shipped name, mapping, :class:`Config`) -- its model is loaded
    here for the reference scores and closed again -- or a loaded :class:`Classifier`, whose
    fitted state (``fit``, ``fit_domain``) travels too and whose model file the actors load.
    """
    if isinstance(config, Classifier):
        if model is not None or runtime:
            raise ValueError("model and runtime overrides apply to a config, not to a loaded Classifier")
        return _snapshot(config, config.backend.identity().path)
    cfg = load_config(config)
    if runtime:
        cfg = replace(cfg, runtime=replace(cfg.runtime, **runtime))
    spec = model or cfg.model
    clf = Classifier.from_config(cfg, spec)
    try:
        return _snapshot(clf, spec)
    finally:
        close = getattr(clf.backend, "close", None)
        if close is not None:
            close()


def _snapshot(clf: Classifier, model: str | None) -> Snapshot:
    if model is None:
        raise ModelError("this classifier's backend has no model file for the actors to load")
    clf.calibrator.prepare()  # scores what the configured method needs; reads the calibration file
    state = clf.calibration_state
    config = clf.config
    config = replace(config, scoring=replace(config.scoring, calibration_file=None))
    path = clf.backend.identity()
    return Snapshot(config=config, model=str(model), model_size=path.size,
                    references=clf.calibrator.references.snapshot(),
                    state=CalibrationState(**{f.name: getattr(state, f.name) for f in fields(CalibrationState)}))


class Predictor:
    """A callable class for ``Dataset.map_batches``: loads the model once, classifies numpy batches.

    ``threads`` defaults to the CPUs Ray assigned to the actor (else all this process may use).
    ``backend`` is for tests (a loaded backend to use instead of loading one).
    """

    def __init__(self, snapshot: Snapshot, *, text_column: str = "text", threads: int | None = None,
                 n_gpu_layers: int | None = None, backend: Backend | None = None) -> None:
        config = snapshot.config
        rt = config.runtime
        if backend is None:
            from .backends.llama_cpp import LlamaCppBackend  # loads llama.cpp's shared library
            from .models import resolve_model

            path = resolve_model(snapshot.model)
            size = path.stat().st_size
            if snapshot.model_size is not None and size != snapshot.model_size:
                raise ModelError(f"{path} on this node has {size} bytes, the driver's model "
                                 f"{snapshot.model_size}: every node needs the same model file")
            backend = LlamaCppBackend(path, n_ctx=rt.n_ctx, batch_size=rt.batch_size,
                                      threads=threads or rt.threads or assigned_cpus(),
                                      n_gpu_layers=rt.n_gpu_layers if n_gpu_layers is None else n_gpu_layers)
        self.text_column = text_column
        self.classifier = Classifier(config, backend)
        references = self.classifier.calibrator.references
        references.cache_dir = None  # everything needed was shipped: no disk cache on the workers
        references.restore(snapshot.references)
        state = self.classifier.calibration_state
        for f in fields(CalibrationState):
            setattr(state, f.name, getattr(snapshot.state, f.name))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        predictions = self.classifier.classify_many(self.inputs(batch))
        return prediction_columns(batch, predictions, self.classifier.config.label_names)

    def inputs(self, batch: Mapping[str, np.ndarray]) -> list[Input]:
        """The batch's texts (``text_column``), or records of the columns a template with several
        fields (``{premise}``, ``{hypothesis}``) names."""
        names = self.classifier.config.fields
        if len(names) == 1:
            if self.text_column not in batch:
                raise KeyError(f"no column {self.text_column!r} in the dataset (its columns: "
                               f"{', '.join(map(repr, batch))}); pass text_column=")
            return [as_text(value) for value in batch[self.text_column].tolist()]
        missing = [name for name in names if name not in batch]
        if missing:
            raise KeyError(f"the prompt uses the fields {', '.join(names)}; the dataset has no column "
                           f"{', '.join(map(repr, missing))} (its columns: {', '.join(map(repr, batch))})")
        columns = [[as_text(value) for value in batch[name].tolist()] for name in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def as_text(value: Any) -> Any:
    """A string column's value as str (Arrow may hand strings back as bytes); anything else as it
    is, for the classifier to refuse with its own message."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def assigned_cpus() -> int | None:
    """The CPUs Ray assigned to this worker (None outside Ray or without a CPU count)."""
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not in a Ray worker
        return None
    return max(1, int(cpus)) if cpus else None


def prediction_columns(batch: Mapping[str, np.ndarray], predictions: Sequence[Prediction],
                       label_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The input columns (clashing names as ``input_<name>``), then the prediction's columns."""
    probs = [f"prob_{name}" for name in label_names]
    taken = set(PREDICTION_COLUMNS) | set(probs)
    out: dict[str, np.ndarray] = {}
    for key, values in batch.items():
        new = key
        while new in taken or (new != key and new in batch) or new in out:
            new = f"input_{new}"
        out[new] = values
    out["label"] = np.array([p.label for p in predictions], dtype=object)
    out["labels"] = np.array([";".join(p.labels) for p in predictions], dtype=object)
    for name, column in zip(label_names, probs, strict=True):
        out[column] = np.array([p.probabilities.get(name, np.nan) for p in predictions], dtype=np.float64)
    out["abstained"] = np.array([p.abstained for p in predictions], dtype=bool)
    out["reason"] = np.array([p.reason for p in predictions], dtype=object)
    out["truncated"] = np.array([p.truncated for p in predictions], dtype=bool)
    out["chunks"] = np.array([p.n_chunks for p in predictions], dtype=np.int64)
    return out


def classify_dataset(ds: ray.data.Dataset, config: str | Path | Mapping[str, Any] | Config | Classifier, *,
                     model: str | None = None, workers: int | None = None, threads: int | None = None,
                     batch_size: int | None = None, text_column: str = "text", num_gpus: float | None = None,
                     n_gpu_layers: int | None = None, **runtime: Any) -> ray.data.Dataset:
    """``ds`` with every row classified, in input order, on ``workers`` actors of ``threads`` CPUs each.

    ``config``: see :func:`prepare` (the reference scores are computed here, once). ``workers``
    defaults to the cluster's CPUs // ``threads`` (``threads`` defaults to 1); ``batch_size`` is
    the rows per actor call (default: the classifier's chunk, see the module notes on batch
    calibration); ``runtime`` overrides ``runtime.*`` settings (``batch_size`` there is texts
    per llama.cpp decode). ``text_column`` holds the text of a ``{text}``-only template; a template
    with several fields (``{premise}``, ``{hypothesis}``) reads the columns of those names.
    ``num_gpus``/``n_gpu_layers`` pass through for GPU builds. The input
    is read and cut into blocks now (materialized); nothing is classified until the result is
    consumed or written.
    """
    import ray

    snapshot = prepare(config, model, **runtime)
    threads = max(1, int(threads or 1))
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", threads)) // threads)
    rows = int(batch_size or snapshot.chunk)
    ds, exact = _blocks_of(ds, rows)  # also spreads a one-block (one-file) input over the actors
    if snapshot.config.scoring.calibration == "batch" and (rows % snapshot.chunk or not exact):
        log.warning("batch calibration: %s, so rows can differ from a single process's run where one of its "
                    "chunks of %d texts straddles a Ray batch",
                    f"batch_size {rows} is not a multiple of {snapshot.chunk}" if exact else
                    "this Ray cannot cut blocks of exactly that many rows (repartition(strict=True))", snapshot.chunk)
    out = ds.map_batches(Predictor, fn_constructor_args=(snapshot,),
                         fn_constructor_kwargs={"text_column": text_column, "threads": threads,
                                                "n_gpu_layers": n_gpu_layers},
                         batch_size=rows, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                         num_cpus=threads, num_gpus=num_gpus)
    # Output in input order (the pipeline's context, shared with the datasets it was built from).
    out.context.execution_options.preserve_order = True
    return out


def _blocks_of(ds: ray.data.Dataset, rows: int) -> tuple[ray.data.Dataset, bool]:
    """``ds`` cut, in order, into blocks of exactly ``rows`` rows (the last one fewer) where this Ray can.

    Returns the dataset and whether the cut is exact. The cut dataset is materialized (held in
    Ray's object store, spilled to disk when large) before any actor starts.
    """
    ds.context.execution_options.preserve_order = True
    parameters = inspect.signature(ds.repartition).parameters
    if "strict" in parameters:
        ds, exact = ds.repartition(target_num_rows_per_block=rows, strict=True), True
    elif "target_num_rows_per_block" in parameters:
        ds, exact = ds.repartition(target_num_rows_per_block=rows), False
    else:
        return ds, False  # an old Ray: the input's own blocks
    # Cut before the actors start: in one streaming pipeline, actors holding every CPU starve the
    # repartition's tasks and nothing moves (seen with Ray 2.60 when workers x threads = all CPUs).
    return ds.materialize(), exact
