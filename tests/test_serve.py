"""``lpclassify serve`` as users run it: a real server process on a free port, a real model
(SmolLM2-135M), called with a real HTTP client (httpx).

Covers both API shapes, record fields (a premise/hypothesis config), top_k, the label-set cache, responses equal to
``classify_many`` bit for bit, 32 concurrent clients sharing batches, overload (429), every bad
input (its 4xx, then /health still answers), timeouts (504), the API key, and SIGTERM draining.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

for _module in ("fastapi", "uvicorn", "prometheus_client"):
    pytest.importorskip(_module, reason="the serve extra is not installed: pip install -e '.[test,serve]'")
httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install -e '.[test,serve]'")

from conftest import ROOT, cached_backend, model_path  # noqa: E402

from lpclassify import Classifier  # noqa: E402
from lpclassify.config import load_config  # noqa: E402
from lpclassify.serve.protocol import ClassificationResponse, ErrorResponse, ZeroShotOutput  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]

KEY = "test-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
REVIEWS = ["An absolute joy from start to finish.", "Dull, slow and far too long.", "I want my money back.",
           "The cast is wonderful and the music even better.", "Not bad at all", "A mess."]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(*options: str) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LPC_TEST_KEY": KEY}
    command = [sys.executable, "-m", "lpclassify", "serve", "--model", str(model_path("smollm2")), "--threads", "1",
               "--port", str(port), *options]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stderr.read().decode()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Server(process, url)
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not answer /health within 120 s")


def stop(server: Server) -> tuple[int, str]:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    return server.process.returncode, server.process.stderr.read().decode()


PAIRS_CONFIG = """\
name: pairs
prompt: |
  Premise: {premise}
  Hypothesis: {hypothesis}
  Question: does the premise imply the hypothesis? Answer:
labels:
  entailment: {completions: [" yes"]}
  not_entailment: {completions: [" no"]}
scoring: {calibration: contextual}
"""


@pytest.fixture(scope="module")
def pairs_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A record config like the shipped entailment.yaml, without its few-shot examples (cheaper)."""
    path = tmp_path_factory.mktemp("configs") / "pairs.yaml"
    path.write_text(PAIRS_CONFIG, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def server(pairs_config: str) -> Iterator[Server]:
    """Three configs, an API key, a small body and input limit."""
    s = start_server("-c", "sentiment", "-c", pairs_config, "-c", "topic", "--api-key-env", "LPC_TEST_KEY",
                     "--max-body-bytes", "20000", "--max-inputs", "64")
    yield s
    code, err = stop(s)
    assert code == 0, err


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(headers=AUTH) as c:
        yield c


def local(config: str) -> Classifier:
    """The same config and model in this process, for the parity checks."""
    cfg = load_config(config)
    return Classifier(cfg, cached_backend(model_path("smollm2"), cfg.runtime.n_ctx, threads=1))


def as_rows(response: dict) -> list[tuple[object, list[float | None]]]:
    return [(row["label"], row["probs"]) for row in response["data"]]


def expected_rows(clf: Classifier, items: list) -> list[tuple[object, list[float]]]:
    return [(p.label, [p.probabilities[name] for name in clf.config.label_names]) for p in clf.classify_many(items)]


# --------------------------------------------------------------------------- the two API shapes


def test_classify_equals_classify_many(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"model": "sentiment", "input": REVIEWS})
    assert response.status_code == 200, response.text
    body = ClassificationResponse.model_validate(response.json()).model_dump()
    assert [row["index"] for row in body["data"]] == list(range(len(REVIEWS)))
    assert as_rows(body) == expected_rows(local("sentiment"), REVIEWS)  # float equality: bit for bit
    assert body["usage"]["prompt_tokens"] > len(REVIEWS) and body["model"] == "sentiment"
    assert body["data"][0]["num_classes"] == 2 and set(body["data"][0]["probabilities"]) == {"positive", "negative"}
    one = client.post("/v1/classify", json={"model": "sentiment", "input": REVIEWS[1]}).json()
    assert as_rows(one) == as_rows(body)[1:2]
    assert client.post("/v1/classify", json={"model": "sentiment", "input": []}).json()["data"] == []


def test_records_with_fields(client: httpx.Client, pairs_config: str) -> None:
    pairs = [{"premise": "The shop is closed on Sundays.", "hypothesis": "The shop opens every day."},
             {"premise": "She sold her car last week.", "hypothesis": "She no longer owns that car."}]
    response = client.post("/v1/classify", json={"model": "pairs", "input": pairs})
    assert response.status_code == 200, response.text
    assert as_rows(response.json()) == expected_rows(local(pairs_config), pairs)
    bad = client.post("/v1/classify", json={"model": "pairs", "input": "just a text"})
    assert bad.status_code == 400 and "premise" in bad.json()["error"]["message"]


def test_top_k(client: httpx.Client) -> None:
    body = client.post("/v1/classify", json={"model": "topic", "input": ["Stocks rallied after the rate cut"],
                                             "top_k": 2}).json()
    row = body["data"][0]
    assert len(row["probabilities"]) == 2 and len(row["probs"]) == 4 and len(row["labels"]) == 2
    labels = ["world", "sports", "business", "technology"]
    best = sorted(zip(labels, row["probs"], strict=True), key=lambda x: -x[1])[:2]
    assert list(row["probabilities"].items()) == best and row["labels"][0] == row["label"]


def test_zero_shot_shape_parity_and_label_set_cache(client: httpx.Client) -> None:
    labels = ["complaint", "praise", "question"]
    texts = ["Why is my order late?", "Great service, thank you!"]
    request = {"inputs": texts, "parameters": {"candidate_labels": labels}}
    first = client.post("/v1/zero-shot", json=request)
    assert first.status_code == 200, first.text
    assert first.headers["x-label-set-cache"] == "miss"
    outputs = [ZeroShotOutput.model_validate(item) for item in first.json()]
    clf = Classifier.from_labels(labels, backend=cached_backend(model_path("smollm2"), 1024, threads=1))
    for text, output, prediction in zip(texts, outputs, clf.classify_many(texts), strict=True):
        assert output.sequence == text and sorted(output.labels) == sorted(labels)
        assert output.scores == sorted(output.scores, reverse=True)
        assert dict(zip(output.labels, output.scores, strict=True)) == prediction.probabilities
    again = client.post("/v1/zero-shot", json=request)
    assert again.headers["x-label-set-cache"] == "hit" and again.json() == first.json()
    single = client.post("/v1/zero-shot", json={"inputs": texts[0], "parameters": {"candidate_labels": labels}})
    assert single.json() == first.json()[0]
    assert 'lpclassify_label_sets_total{result="hit"} 2.0' in client.get("/metrics").text


def test_zero_shot_multi_label_equals_the_in_process_classifier(client: httpx.Client) -> None:
    """``multi_label: true``: every label its own yes/no question (Classifier.from_labels(multi_label=True)),
    scores independent (they need not sum to 1), sorted; one label is enough; cached apart from the
    single-label set of the same names."""
    labels = ["billing", "outage", "thanks"]
    texts = ["I was charged twice this month and the website is down.", "Thank you, the new plan works great!"]
    backend = cached_backend(model_path("smollm2"), 1024, threads=1)
    request = {"inputs": texts, "parameters": {"candidate_labels": labels, "multi_label": True}}
    response = client.post("/v1/zero-shot", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["x-label-set-cache"] == "miss"
    outputs = [ZeroShotOutput.model_validate(item) for item in response.json()]
    clf = Classifier.from_labels(labels, multi_label=True, backend=backend)
    assert clf.config.decision.mode == "multi"
    for text, output, prediction in zip(texts, outputs, clf.classify_many(texts), strict=True):
        assert output.sequence == text and sorted(output.labels) == sorted(labels)
        assert output.scores == sorted(output.scores, reverse=True)
        assert dict(zip(output.labels, output.scores, strict=True)) == prediction.probabilities  # bit for bit
    assert any(abs(sum(output.scores) - 1) > 1e-6 for output in outputs)  # independent, not a distribution
    assert client.post("/v1/zero-shot", json=request).headers["x-label-set-cache"] == "hit"

    single = client.post("/v1/zero-shot", json={"inputs": texts, "parameters": {"candidate_labels": labels}})
    assert single.status_code == 200 and single.headers["x-label-set-cache"] == "miss"  # another label set
    alone = Classifier.from_labels(labels, backend=backend).classify_many(texts)
    assert [dict(zip(o["labels"], o["scores"], strict=True)) for o in single.json()] == [
        p.probabilities for p in alone]

    one = client.post("/v1/zero-shot", json={"inputs": texts[0], "parameters": {"candidate_labels": ["outage"],
                                                                               "multi_label": True}})
    assert one.status_code == 200, one.text
    [expected] = Classifier.from_labels(["outage"], multi_label=True, backend=backend).classify_many(texts[:1])
    assert one.json() == {"sequence": texts[0], "labels": ["outage"], "scores": [expected.probabilities["outage"]]}


def test_health_models_metrics_docs(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    models = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["sentiment", "pairs", "topic"]
    assert models[1]["fields"] == ["premise", "hypothesis"] and models[0]["labels"] == ["positive", "negative"]
    metrics = client.get("/metrics").text
    for name in ("lpclassify_requests_total", "lpclassify_queue_depth", "lpclassify_batch_size_bucket",
                 "lpclassify_inference_seconds_bucket", "lpclassify_texts_total"):
        assert name in metrics
    schema = client.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/zero-shot", "/v1/models"} <= set(schema["paths"])
    assert "ClassificationRequest" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_32_concurrent_clients_share_batches_and_get_their_own_answers(server: Server) -> None:
    texts = [f"{REVIEWS[i % len(REVIEWS)]} (review {i})" for i in range(32)]
    with server.client(headers=AUTH) as c:
        before = _metric(c.get("/metrics").text, "lpclassify_batch_size_count")

        def call(text: str) -> dict:
            with server.client(headers=AUTH) as own:
                response = own.post("/v1/classify", json={"model": "sentiment", "input": [text]})
                assert response.status_code == 200, response.text
                return response.json()

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(call, texts))
        batches = _metric(c.get("/metrics").text, "lpclassify_batch_size_count") - before
    clf = local("sentiment")
    assert [as_rows(a)[0] for a in answers] == expected_rows(clf, texts)
    assert batches < 32  # requests shared engine batches


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


# --------------------------------------------------------------------------- bad input, security


@pytest.mark.parametrize(("method", "path", "content", "status", "kind"), [
    ("POST", "/v1/classify", b'{"model": "sentiment", "input": ["x"', 400, "invalid_request"),
    ("POST", "/v1/classify", {"model": "no-such", "input": "x"}, 404, "not_found"),
    ("POST", "/v1/classify", {"model": "../../etc/passwd.yaml", "input": "x"}, 404, "not_found"),
    ("POST", "/v1/classify", {"model": "sentiment"}, 400, "invalid_request"),
    ("POST", "/v1/classify", {"model": "sentiment", "input": 42}, 400, "invalid_request"),
    ("POST", "/v1/classify", {"model": "sentiment", "input": ["fine", "  "]}, 400, "invalid_input"),
    ("POST", "/v1/classify", {"model": "sentiment", "input": ["x"] * 65}, 413, "too_large"),
    ("POST", "/v1/classify", {"model": "sentiment", "input": ["x" * 30000]}, 413, "too_large"),
    ("POST", "/v1/classify", {"model": "sentiment", "input": "x", "top_k": 0}, 400, "invalid_request"),
    ("POST", "/v1/zero-shot", {"inputs": "x", "parameters": {"candidate_labels": []}}, 400, "invalid_request"),
    ("POST", "/v1/zero-shot", {"inputs": "x", "parameters": {"candidate_labels": ["only"]}}, 400, "invalid_labels"),
    ("POST", "/v1/zero-shot", {"inputs": "x", "parameters": {}}, 400, "invalid_request"),
    ("POST", "/v1/zero-shot", {"inputs": "x", "parameters": {"candidate_labels": ["a", "b"], "prompt": "{nope}"}},
     400, "invalid_request"),
    ("GET", "/v1/nothing-here", None, 404, "not_found"),
])
def test_bad_input_gets_its_4xx_and_the_server_keeps_serving(client: httpx.Client, method: str, path: str,
                                                            content: object, status: int, kind: str) -> None:
    body = content if isinstance(content, bytes) else json.dumps(content).encode() if content is not None else None
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = ErrorResponse.model_validate(response.json()).error
    assert error.type == kind and error.code == status
    assert "\n" not in error.message and "Traceback" not in error.message and error.message
    assert client.get("/health").status_code == 200


def test_api_key_is_required_on_every_route_but_health(server: Server) -> None:
    with server.client() as c:
        assert c.get("/health").status_code == 200
        for method, path in (("POST", "/v1/classify"), ("GET", "/v1/models"), ("GET", "/metrics"),
                             ("GET", "/docs"), ("POST", "/v1/zero-shot")):
            response = c.request(method, path, json={"model": "sentiment", "input": "x"})
            assert response.status_code == 401, path
            assert response.json()["error"]["type"] == "unauthorized"
        wrong = c.post("/v1/classify", json={"model": "sentiment", "input": "x"},
                       headers={"Authorization": "Bearer not-the-key"})
        assert wrong.status_code == 401


def test_a_public_bind_needs_a_key_or_insecure() -> None:
    command = [sys.executable, "-m", "lpclassify", "serve", "-c", "sentiment", "--host", "0.0.0.0",
               "--port", str(free_port())]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--insecure" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- load, timeouts, shutdown


def test_overload_is_refused_with_429_and_every_accepted_request_is_answered() -> None:
    s = start_server("-c", "sentiment", "--max-queue", "2", "--max-batch-size", "1", "--max-wait-ms", "0")
    try:
        texts = [f"{REVIEWS[i % len(REVIEWS)]} ({i})" for i in range(40)]

        def call(text: str) -> httpx.Response:
            with s.client() as own:
                return own.post("/v1/classify", json={"model": "sentiment", "input": [text]})

        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            responses = list(pool.map(call, texts))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.headers["Retry-After"].isdigit() and refused.json()["error"]["type"] == "overloaded"
        clf = local("sentiment")
        for text, response in zip(texts, responses, strict=True):
            if response.status_code == 200:
                assert as_rows(response.json()) == expected_rows(clf, [text])
        with s.client() as c:
            assert c.get("/health").status_code == 200
    finally:
        code, err = stop(s)
    assert code == 0, err


def test_a_request_past_the_timeout_gets_504_its_work_is_dropped_and_the_server_goes_on() -> None:
    s = start_server("-c", "sentiment", "--timeout", "2", "--max-batch-size", "512")
    try:
        with s.client() as c:
            long = [" ".join([REVIEWS[i % len(REVIEWS)]] * 40) for i in range(400)]  # minutes of work
            response = c.post("/v1/classify", json={"model": "sentiment", "input": long})
            assert response.status_code == 504 and response.json()["error"]["type"] == "timeout"
            assert c.get("/health").status_code == 200
            deadline = time.monotonic() + 120  # the batch stops at its next model call
            while _metric(c.get("/metrics").text, "lpclassify_dropped_total") < 1 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _metric(c.get("/metrics").text, "lpclassify_dropped_total") == 1
            assert c.post("/v1/classify", json={"model": "sentiment", "input": "fine"}).status_code == 200
    finally:
        code, err = stop(s)
    assert code == 0, err


def test_sigterm_finishes_accepted_requests_then_exits_0() -> None:
    s = start_server("-c", "sentiment", "--max-batch-size", "2", "--timeout", "600")
    # a long request first (it keeps the model busy), then five that queue behind it
    texts = [[f"{review} ({i})" for i in range(4) for review in REVIEWS]] + [
        [f"{review} ({i})" for review in REVIEWS] for i in range(5)]

    def call(items: list[str]) -> httpx.Response:
        with s.client() as own:
            return own.post("/v1/classify", json={"model": "sentiment", "input": items})

    with concurrent.futures.ThreadPoolExecutor(6) as pool, s.client() as c:
        futures = [pool.submit(call, texts[0])]
        time.sleep(1.0)  # the long request is running
        deadline = time.monotonic() + 120
        futures += [pool.submit(call, items) for items in texts[1:]]
        while _metric(c.get("/metrics").text, "lpclassify_queue_depth") < len(texts) - 1 and not futures[0].done():
            assert time.monotonic() < deadline, "the requests were not all accepted within 120 s"
            time.sleep(0.05)
        s.process.send_signal(signal.SIGTERM)
        responses = [f.result() for f in futures]
    code, err = stop(s)
    assert code == 0, err
    assert [r.status_code for r in responses] == [200] * len(texts)
    clf = local("sentiment")
    assert [as_rows(r.json()) for r in responses] == [expected_rows(clf, items) for items in texts]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{s.url}/health", timeout=2)
