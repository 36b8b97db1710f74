"""``python benchmarks/run.py --quick``, as CI runs it: every benchmark script end to end on SmolLM2 and a
few texts, into a temporary directory, each report with its provenance and each table rendered.

The benchmark data (SST-2 and AG News) are not part of the repository: they sit in ``../shared/data``
beside the checkout (CI lays a copy of shared/ there). Without them the test is skipped with that
reason, as a missing model is, and under ``LPCLASSIFY_NO_SKIPS=1`` (CI) that skip is a failure.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, model_path

pytestmark = [pytest.mark.model, pytest.mark.slow]

sys.path.insert(0, str(ROOT / "benchmarks"))
import render  # noqa: E402
import run  # noqa: E402

SCRIPTS = {"throughput": "throughput.py", "labels": "labels.py", "labels-smollm2": "labels.py", "scale": "scale.py",
           "fewshot-cost": "fewshot.py", "fewshot-chat": "fewshot.py", "serve": "serve.py"}


def committed_outputs() -> dict[str, str]:
    """What a benchmark run may write when it writes where the committed reports are: their hashes."""
    paths = [*sorted((ROOT / "benchmarks" / "reports").rglob("*")), *sorted((ROOT / "docs" / "benchmarks").glob("*")),
             ROOT / "README.md"]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


@pytest.mark.timeout(1800)  # a few minutes on 2 quiet cores; a loaded machine (load 10 on 2 cores) took 9
def test_run_quick_writes_every_report_with_its_provenance_and_renders_every_table(tmp_path: Path) -> None:
    missing = [name for name in ("sst2.jsonl", "agnews.jsonl") if not (run.DATA / name).is_file()]
    if missing:
        pytest.skip(f"the benchmark data are not there: {', '.join(missing)} in {run.DATA} (shared/data beside "
                    "the checkout; CI lays it there)")
    model_path("smollm2")  # skipped with its reason when the model is not pulled
    assert set(SCRIPTS) == set(run.DEFAULT), "a benchmark was added to run.py: name its script here"
    before = committed_outputs()
    out = tmp_path / "quick"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"run.py --quick: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert committed_outputs() == before, "a quick run wrote over committed reports, docs tables or the README"

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for name, script in SCRIPTS.items():
        report = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        meta = report["provenance"]
        assert report["benchmark"] == name and report["results"], name
        assert meta["quick"] is True and meta["commit"] == head, name
        assert meta["command"].startswith(f"python benchmarks/{script} "), meta["command"]
        assert meta["run_command"].startswith("python benchmarks/run.py --quick"), meta["run_command"]
        machine = meta["machine"]
        assert machine["cpu"] and machine["cores"] >= 1 and len(machine["load_average_at_start"]) == 3, machine
        assert meta["duration_s"] > 0 and meta["date"].endswith("Z")

        page = (out / "tables" / f"{name}.inc.md").read_text(encoding="utf-8")
        assert page == render.render(name, report, render.shown(out / f"{name}.json")), name  # as render.py makes it
        assert page.startswith("| ") and "|---" in page, f"{name}: no table:\n{page}"
        assert "Quick smoke run: not a measurement." in page and head[:10] in page, page

    serve = json.loads((out / "serve.json").read_text(encoding="utf-8"))["results"]
    assert [r["clients"] for r in serve["runs"]] == [1, 8, 32]
    assert all(r["equal_to_classify_many"] for r in serve["runs"]), serve["runs"]  # bit for bit, even in a smoke run
    assert serve["server_exit_status"] == 0 and serve["one_client_overhead_ms"] is not None
