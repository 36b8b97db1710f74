"""The server as a Ray Serve deployment: a local Ray, 2 replicas (each its own SmolLM2), the same rows
as ``classify_many`` from whichever replica answers."""

from __future__ import annotations

import concurrent.futures

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install -e '.[test,serve,ray-serve]'")
pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test,serve]'")
httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install -e '.[test]'")

from conftest import cached_backend, model_path  # noqa: E402
from test_serve import REVIEWS, free_port  # noqa: E402

from lpclassify import Classifier  # noqa: E402
from lpclassify.config import load_config  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_two_replicas_answer_the_same_rows_as_classify_many() -> None:
    import ray
    from ray import serve

    from lpclassify.ray_serve import deployment, run

    path = str(model_path("smollm2"))
    config = load_config("sentiment")
    clf = Classifier(config, cached_backend(path, config.runtime.n_ctx, threads=1))
    texts = [f"{review} ({i})" for i in range(4) for review in REVIEWS]
    expected = [(p.label, [p.probabilities[n] for n in config.label_names]) for p in clf.classify_many(texts)]
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        run(deployment(["sentiment"], replicas=2, model=path, threads=1), port=port, blocking=False)
        replicas = serve.status().applications["lpclassify"].deployments["LpclassifyServer"].replica_states
        assert replicas.get("RUNNING") == 2

        def call(text: str) -> tuple[str, tuple[object, list[float]]]:
            response = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"model": "sentiment", "input": [text]},
                                  timeout=300)
            assert response.status_code == 200, response.text
            row = response.json()["data"][0]
            return response.headers["x-lpclassify-process"], (row["label"], row["probs"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, texts))
        assert [row for _, row in answers] == expected
        assert len({process for process, _ in answers}) == 2  # both replicas answered
    finally:
        serve.shutdown()
        ray.shutdown()
