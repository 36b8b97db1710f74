"""Run the benchmarks, write their reports and render the tables the docs include.

    python benchmarks/run.py                  # the full run (it prints how long it expects)
    python benchmarks/run.py --quick          # a smoke run, SmolLM2, a few texts (CI): nothing committed is touched
    python benchmarks/run.py --only scale     # one benchmark (its report and the docs' tables)
    python benchmarks/run.py --quick --out-dir /tmp/q   # reports and tables under /tmp/q instead

Each benchmark script runs in its own process and writes its JSON; this wraps it as
``benchmarks/reports/<name>.json`` with what is needed to trust it: the commit (and whether
the working tree had changes), the machine (CPU model, cores, load average at the start), the
command, the date and how long it took. Then ``render.py`` turns every report into the Markdown
tables under ``docs/benchmarks/`` (``render.py --check`` is a test: the docs' tables are
exactly what the reports say).

A quick run runs every script end to end on a few texts (the fewest settings that still go
through each code path) and writes to ``benchmarks/results/quick/`` (git ignores it), or to
``--out-dir``, reports marked ``"quick": true``, with its tables under ``tables/`` there; it
never writes ``benchmarks/reports``, ``docs/`` or the README. ``tests/test_benchmarks.py`` runs
it. Benchmark data come from ``../shared/data`` (beside the checkout); the run stops with a
message if it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DATA = ROOT.parent / "shared" / "data"
REPORTS = BENCH / "reports"
QUICK = BENCH / "results" / "quick"


@dataclass(frozen=True)
class Benchmark:
    """One script run: its arguments for a full and for a quick run (``{json}`` is where it writes)."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    # Expected minutes of the full run on a quiet 2-core machine, estimated from earlier reports' rates
    # (printed before the run starts; the report records what it took).
    minutes: float


def benchmarks(args: argparse.Namespace, out_dir: Path) -> list[Benchmark]:
    """Every benchmark, full and quick. A quick variant runs its whole script (every set-up, the
    report it writes) on SmolLM2, one data set where a script takes several, a few texts and one
    llama.cpp thread where the script has the option (spinning threads on a loaded machine are what
    made quick runs slow): what CI can afford on 2 cores."""
    small = "smollm2-135m"
    one = ("--threads", "1")
    return [
        Benchmark("throughput", "throughput.py", ("--n", str(args.throughput_n)),
                  ("--n", "2", "--models", small, "--data", "sst2", "--rate-tokens", "64", "--rate-repeats", "1",
                   *one), 3.5),
        Benchmark("labels", "labels.py", ("--texts", str(args.labels_texts), "--compare-waves"),
                  ("--texts", "1", "--counts", "4", "--model", small), 5.0),
        # The same on SmolLM2: a 49,152-word vocabulary, so logit rows are cheap and the packing shows alone.
        Benchmark("labels-smollm2", "labels.py",
                  ("--texts", str(args.labels_texts), "--compare-waves", "--model", small),
                  ("--texts", "1", "--counts", "20", "--model", small, "--quick"), 6.0),
        Benchmark("scale", "scale.py", ("--n", str(args.scale_n)), ("--n", "8", "--model", small), 3.5),
        Benchmark("fewshot-cost", "fewshot.py", ("cost", "--n", str(args.fewshot_n), "--repeats", "2"),
                  ("cost", "--n", "2", "--repeats", "1", "--shots", "0", "4", "--sets", "sst2", "--model", small,
                   *one), 1.0),
        Benchmark("fewshot-chat", "fewshot.py", ("chat", "--n", str(args.chat_n), "--sets", "sst2"),
                  ("chat", "--n", "2", "--sets", "sst2", *one), 1.0),
        Benchmark("serve", "serve.py", ("--n", str(args.serve_n)),
                  ("--n", "8", "--model", small, "--alone", "2", *one), 8.0),
        # Not in the default set (its last report took about an hour: 1,000 rows per data set): --only tune.
        Benchmark("tune", "tune.py", ("--n", str(args.tune_n), "--out-dir", str(REPORTS / "tuned")),
                  ("--n", "2", "--tasks", "sst2", "--model", small, "--out-dir", str(out_dir / "tuned")), 60.0),
    ]


DEFAULT = ("throughput", "labels", "labels-smollm2", "scale", "fewshot-cost", "fewshot-chat", "serve")


def git(*argv: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable, "memory_gb": memory_gb,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "os": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("lpclassify", "llama-cpp-python", "numpy", "ray"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def provenance(command: list[str], quick: bool) -> dict[str, Any]:
    # the run's own outputs (reports written before this one, rendered tables) do not make the code dirty
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":!benchmarks/reports", ":!docs/benchmarks")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status), "quick": quick,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": shlex.join(["python", *(str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c
                                               for c in command[1:])]),
            "run_command": shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]]),
            "machine": machine(), "versions": versions()}


def run_one(bench: Benchmark, quick: bool, out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="lpclassify-bench-") as tmp:
        raw = Path(tmp) / f"{bench.name}.json"
        command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
        meta = provenance(command, quick)  # the command as one would type it; --json is where run.py collects it
        command += ["--json", str(raw)]
        print(f"== {bench.name}: {meta['command']}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"benchmarks/run.py: {bench.name} failed (exit {done.returncode}); no report written")
        results = json.loads(raw.read_text(encoding="utf-8"))
    meta["duration_s"] = round(seconds, 1)
    report = {"benchmark": bench.name, "provenance": meta, "results": results}
    path = out_dir / f"{bench.name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"== {bench.name}: {seconds:.0f} s, wrote {shown(path)}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a few texts, SmolLM2 only; writes under benchmarks/results/quick (or --out-dir)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"run these (default: {' '.join(DEFAULT)}; also: tune)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="write the reports here and their tables under DIR/tables, touching nothing "
                             "committed (default: benchmarks/reports and docs/benchmarks; with --quick, "
                             "benchmarks/results/quick)")
    parser.add_argument("--throughput-n", type=int, default=30, help="texts per data set and model (default 30)")
    parser.add_argument("--labels-texts", type=int, default=4, help="texts per label count (default 4)")
    parser.add_argument("--scale-n", type=int, default=300, help="AG News texts per set-up (default 300)")
    parser.add_argument("--fewshot-n", type=int, default=30, help="texts per few-shot setting (default 30)")
    parser.add_argument("--chat-n", type=int, default=100, help="SST-2 texts per chat prompt (default 100)")
    parser.add_argument("--serve-n", type=int, default=600,
                        help="SST-2 texts per client count and for classify_many (default 600)")
    parser.add_argument("--tune-n", type=int, default=1000, help="evaluated rows per data set for tune (default 1000)")
    args = parser.parse_args(argv)

    out_dir = (args.out_dir or (QUICK if args.quick else REPORTS)).resolve()
    known = {b.name: b for b in benchmarks(args, out_dir)}
    wanted = args.only or list(DEFAULT)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}")
    if not DATA.is_dir():
        sys.exit(f"benchmarks/run.py: the benchmark data are not there: {DATA} (sst2.jsonl, agnews.jsonl)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.quick:
        expected = sum(known[name].minutes for name in wanted)
        print(f"full run of {', '.join(wanted)}: about {expected:.0f} minutes on a quiet 2-core machine", flush=True)
    start = time.perf_counter()
    for name in wanted:
        run_one(known[name], args.quick, out_dir)

    sys.path.insert(0, str(BENCH))
    import render

    # The docs' tables and the README's headline only from the committed reports' place; anywhere else
    # the tables go beside the reports and the README is left alone.
    committed = out_dir == REPORTS.resolve()
    tables = render.DOCS if committed else out_dir / "tables"
    for path in render.write(out_dir, tables, render.README if committed else None):
        print(f"rendered {shown(path)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def shown(path: Path) -> str:
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())
