"""Reports -> the Markdown tables the docs and the README include. Pure: JSON in, text out, nothing measured.

    python benchmarks/render.py            # write docs/benchmarks/*.inc.md and README.md's headline block
    python benchmarks/render.py --check    # exit 1 (with a diff) where a table is not what its report renders

The README's headline table sits between the HEADLINE_BEGIN and HEADLINE_END markers; it is the
shipped configs' accuracy on their test sets, from benchmarks/reports/trust.json (written by
benchmarks/trust.py), or from trust-before.json while no trust.json has been committed.

Every table ends with where its numbers come from: the report file, the commit, the machine and
the command, as the report recorded them. Without a report there is no table, only the command
that makes one.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "benchmarks" / "reports"
DOCS = ROOT / "docs" / "benchmarks"
README = ROOT / "README.md"
HEADLINE_BEGIN = "<!-- begin: headline (benchmarks/render.py) -->"
HEADLINE_END = "<!-- end: headline -->"
HEADLINE_REPORTS = ("trust.json", "trust-before.json")  # the first that exists is rendered
REFERENCE_LABELS = 12  # labels.py times the oracle on at most this many labels per count (its REFERENCE_LABELS)

Row = dict[str, Any]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> str:
    """A Markdown table; ``align`` has one letter per column: l(eft) or r(ight)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rate(x: float) -> str:
    return f"{x:.3f}" if x < 0.1 else f"{x:.2f}"


def times(x: float) -> str:
    return f"{x:.1f}×"


def nats(x: float) -> str:
    return "0.0" if x == 0 else f"{x:.1e}"


def source(path: str, report: dict[str, Any]) -> str:
    """Where the numbers above come from, as the report recorded it."""
    meta = report.get("provenance")
    name = Path(path).stem
    path = f"`{path}`"
    if meta is None and "commit" in report:  # written by the script itself, not through run.py
        return (f"\nNumbers from {path}: commit `{report['commit']}`, {report.get('machine', 'machine not recorded')}; "
                f"`{report.get('command', '?')}`. Written by the script itself, not through `run.py`, so the CPU "
                f"model and the load average are not recorded (`python benchmarks/run.py --only {name}` records "
                f"them).\n")
    if meta is None:
        return (f"\nNumbers from {path}, a report written before reports recorded their commit and machine; "
                f"`python benchmarks/run.py --only {name}` measures it again.\n")
    m = meta["machine"]
    commit = meta["commit"][:10] + (" with uncommitted changes" if meta["dirty"] else "")
    load = " / ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    quick = " **Quick smoke run: not a measurement.**" if meta.get("quick") else ""
    return (f"\nNumbers from {path}: commit `{commit}`, {meta['date']}, {m['cpu']} ({m['usable_cores']} of "
            f"{m['cores']} cores usable, load average {load} at the start), {meta['duration_s']:.0f} s; "
            f"`{meta['command']}`.{quick}\n")


def throughput(results: list[Row]) -> str:
    header = ["model", "data", "N", "oracle loop texts/s", "prompt-once loop texts/s", "engine texts/s",
              "engine vs oracle", "engine vs prompt-once", "tokens decoded per text: oracle / prompt-once / "
              "engine (minimal)", "efficiency", "max \\|engine − oracle\\| nats",
              "max \\|prompt-once − oracle\\| nats", "peak RSS MB"]
    rows = [[r["model"], r["dataset"], r["n"], rate(r["reference_texts_per_s"]), rate(r["prompt_once_texts_per_s"]),
             rate(r["engine_texts_per_s"]), times(r["speedup"]), times(r["speedup_vs_prompt_once"]),
             f"{r['reference_tokens_per_text']:.1f} / {r['prompt_once_tokens_per_text']:.1f} / "
             f"{r['engine_tokens_per_text']:.1f} ({r['minimal_tokens_per_text']:.1f})",
             f"{r['efficiency']:.2f}", nats(r["max_abs_diff_nats"]), nats(r["prompt_once_max_abs_diff_nats"]),
             f"{r['peak_rss_mb']:.0f}"] for r in results]
    return table(header, rows, "llrrrrrrrrrrr")


def labels(results: list[Row] | dict[str, Any]) -> str:
    if isinstance(results, dict):  # labels.py's report: its own commit and machine, then the rows
        results = results["rows"]
    once = all("prompt_once_texts_per_s" in r for r in results)
    ceiling = all("efficiency_ceiling" in r for r in results)  # reports from before it was measured lack it
    header = ["labels", "branches per text", "engine texts/s", "end-to-end texts/s",
              "oracle loop texts/s (timed on k labels, scaled per label)", "k"]
    header += ["prompt-once loop texts/s", "engine vs prompt-once"] if once else []
    header += ["engine vs oracle", "tokens decoded per text (minimal)", "padding per text",
               "logit rows per text (read prefixes)", "decodes per text", "efficiency"]
    header += ["ms per logit row", "efficiency ceiling (minimal tokens + rows)"] if ceiling else []
    header += ["max \\|engine − oracle\\| nats (on the k labels)", "peak RSS MB"]
    rows = []
    for r in results:
        k = r.get("reference_labels", min(REFERENCE_LABELS, r["labels"]))
        row = [r["labels"], f"{r['branches_per_text']:.0f}", rate(r["engine_texts_per_s"]),
               rate(r["end_to_end_texts_per_s"]), rate(r["reference_texts_per_s"]), k]
        if once:  # engine texts/s over the prompt-once loop's (labels.py calls it engine_vs_prompt_once)
            ratio = r.get("speedup_vs_prompt_once", r.get("engine_vs_prompt_once"))
            row += [rate(r["prompt_once_texts_per_s"]), times(ratio)]
        row += [times(r["speedup"]), f"{r['tokens_per_text']:.1f} ({r['minimal_tokens_per_text']:.1f})",
                f"{r['padding_per_text']:.1f}", f"{r['logit_rows_per_text']:.0f} ({r['read_prefixes_per_text']:.0f})",
                f"{r['decodes_per_text']:.1f}", f"{r['efficiency']:.2f}"]
        row += [f"{r['logit_row_ms']:.1f}", f"{r['efficiency_ceiling']:.2f}"] if ceiling else []
        row += [nats(r["max_abs_diff_nats"]), f"{r['peak_rss_mb']:.0f}"]
        rows.append(row)
    return table(header, rows, "r" * len(header))


def scale(results: dict[str, Any]) -> str:
    k = results["first_k"]
    header = ["set-up", "wall s", "start-up s", "steady texts/s", "vs process", f"first {k} texts s", "vs process",
              "rows identical to the first process run", "peak RSS per process/actor MB"]
    rows = [[r["setup"], f"{r['wall_s']:.1f}", f"{r['startup_s']:.1f}", f"{r['steady_texts_per_s']:.2f}",
             f"{r['steady_vs_process']:.2f}", f"{r['first_k_s']:.1f}", f"{r['first_k_vs_process']:.2f}",
             "yes" if r["identical"] is True else "NO", ", ".join(f"{mb:.0f}" for mb in r["peak_rss_mb"])]
            for r in results["results"]]
    spread = results["process_spread"]
    note = (f"\n{results['n']} AG News texts, `{results['model']}` ({results['model_file_mb']:.0f} MB file), "
            f"`{results['config']}`. \"vs process\" is against the better of the two process runs; they differed "
            f"by {100 * spread['steady_spread']:.1f} % in steady rate ({spread['steady_first']:.2f} first, "
            f"{spread['steady_last']:.2f} last) and {100 * spread['first_k_spread']:.1f} % in the time to the "
            f"first {k} texts, which is how far the machine's load drifted during the run.\n")
    return table(header, rows, "lrrrrrrlr") + note


def fewshot_cost(results: list[Row]) -> str:
    header = ["model", "data", "examples", "N", "prefix tokens", "s/text", "tokens decoded per text",
              "decodes per text", "time vs no examples"]
    rows = [[r["model"], r["dataset"], r["examples"], r["n"], r["prefix_tokens"], f"{r['seconds_per_text']:.4f}",
             f"{r['tokens_per_text']:.1f}", f"{r['decodes_per_text']:.2f}", f"{r['cost_vs_first']:.2f}×"]
            for r in results]
    return table(header, rows, "llrrrrrrr")


def fewshot_chat(results: list[Row]) -> str:
    header = ["model", "data", "prompt", "N", "accuracy (contextual)", "uncalibrated"]
    rows = [[r["model"], r["dataset"], r["prompt"], r["n"], f"{100 * r['accuracy']:.1f} %",
             f"{100 * r['uncalibrated']:.1f} %"] for r in results]
    return table(header, rows, "lllrrr")


def tune(results: dict[str, Any]) -> str:
    header = ["task", "evaluated rows", "base/shipped", "best label-free (on the evaluated rows)",
              "base + fitted bias, temperature", "`tune`'s config", "`tune`'s nested estimate", "`tune` time s"]
    rows = [[task, r["evaluated"], f"{100 * r['shipped']:.1f} %",
             f"{100 * r['best_label_free']:.1f} % ({r['best_label_free_setting']})", f"{100 * r['fitted64']:.1f} %",
             f"**{100 * r['tuned']:.1f} %**", f"{100 * r['tune_estimate']:.1f} %", f"{r['tune_seconds']:.0f}"]
            for task, r in results["tasks"].items()]
    return table(header, rows, "lrrrrrrr") + f"\nModel `{results['model']}`; accuracy on the evaluated rows.\n"


def serve(results: dict[str, Any]) -> str:
    """benchmarks/serve.py: the in-process baseline, then each client count, and the two targets."""
    base = results["classify_many"]
    header = ["set-up", "texts/s", "vs classify_many", "p50 latency ms", "p95 ms", "p99 ms", "mean engine batch",
              "answers equal to classify_many"]
    rows: list[list[Any]] = [["`classify_many`, in process", f"{base['texts_per_s']:.2f}", "1.00×", "", "", "", "",
                              ""]]
    for r in results["runs"]:
        rows.append([f"{r['clients']} HTTP client{'s' if r['clients'] != 1 else ''}", f"{r['texts_per_s']:.2f}",
                     f"{r['ratio_to_classify_many']:.2f}×", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                     f"{r['p99_ms']:.1f}", f"{r['mean_batch_texts']:.1f}",
                     "yes" if r["equal_to_classify_many"] else "NO"])
    targets = results.get("targets", {})
    overhead = results.get("one_client_overhead_ms", targets.get("one_client_overhead_ms"))
    one = next((r for r in results["runs"] if r["clients"] == 1), None)
    top = next((r for r in results["runs"] if r["clients"] == 32), None)

    def met(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "**missed**")

    alone = base.get("alone_texts", min(100, results["texts"]))
    lines = [f"{results['texts']} SST-2 texts, `{results['model']}`, config `{results['config']}`, "
             f"{results['threads']} thread{'s' if results['threads'] != 1 else ''}, the same texts for every row."]
    lines.append(f"Model time (one text alone, in process, median of the first {alone}): "
                 f"{base['model_ms_median']:.1f} ms.")
    if one is not None and overhead is not None:
        median = results.get("one_client_median_ms", one["p50_ms"])
        lines.append(f"1 client: median latency on those {alone} texts {median:.1f} ms, {overhead:.1f} ms over the "
                     f"model time (target: within 10 ms, {met(overhead <= 10)}).")
    if top is not None:
        ratio = top["ratio_to_classify_many"]
        lines.append(f"32 clients: {ratio:.2f}× `classify_many`'s throughput (target: at least 0.85×, "
                     f"{met(ratio >= 0.85)}).")
    lines.append(f"Peak RSS: the server {results['server_peak_rss_mb']:.0f} MB, the in-process run "
                 f"{base['peak_rss_mb']:.0f} MB.")
    return table(header, rows, "lrrrrrrl") + "\n" + " ".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Any], str]] = {
    "throughput": throughput, "labels": labels, "labels-smollm2": labels, "scale": scale, "fewshot-cost": fewshot_cost,
    "fewshot-chat": fewshot_chat, "tune": tune, "serve": serve,
}
# Reports written before run.py wrapped them, rendered with the provenance they recorded themselves.
LEGACY = ("tune", "serve")


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def headline(report: dict[str, Any] | None, path: str) -> str:
    """The README's table: each shipped config, as it ships, on its own test set (benchmarks/trust.py)."""
    if report is None:
        return ("No report has been committed for this table yet: `python benchmarks/trust.py` measures it "
                "(benchmarks/reports/trust.json).\n")
    header = ["config", "model", "calibration, demonstrations", "test texts (obvious)", "right: obvious texts",
              "right: all texts", "abstained"]
    rows = []
    for name, r in report.get("configs", {}).items():
        multi = r.get("mode") == "multi"
        right = percent(r.get("exact_set_accuracy", r.get("accuracy")))
        if multi and r.get("micro_f1") is not None:
            right += f" (exact set; micro-F1 {r['micro_f1']:.2f})"
        channel = " (channel)" if r.get("direction") == "channel" else ""
        setting = f"{r.get('calibration', '?')}{channel}, {r.get('n_examples', 0)}"
        rows.append([f"`{name}`", r.get("model", "?"), setting,
                     f"{r.get('n', '?')} ({r.get('n_obvious', '?')})", percent(r.get("obvious_accuracy")), right,
                     "-" if multi else r.get("abstained", "-")])
    machine = report.get("machine", {})
    commits = sorted({r["commit"] for r in report.get("configs", {}).values() if "commit" in r})
    commit = ", ".join(f"`{c}`" for c in commits) if commits else f"`{report.get('commit', '?')}`"
    partial = "" if report.get("complete", True) else " **An incomplete run: some configs are missing.**"
    if Path(path).name != HEADLINE_REPORTS[0]:  # not the current report: say so where the table is read
        partial += (f" **These are the configs before their latest re-tuning (`{Path(path).name}`); "
                    f"`python benchmarks/trust.py` writes `{HEADLINE_REPORTS[0]}`, which replaces them here.**")
    note = (f"\nEach config run as a user runs it, on `benchmarks/data/<config>/test.jsonl` (written for this "
            f"project, never used to choose settings); an abstention counts as wrong. From `{path}`: "
            f"configs from `{report.get('configs_from', '?')}`, commit {commit}, "
            f"{machine.get('processor', '?')} with {machine.get('cpus', '?')} CPUs; "
            f"`{report.get('command', 'python benchmarks/trust.py')}`.{partial}\n")
    return table(header, rows, "lllrrrr") + note


def headline_source(reports: Path = REPORTS) -> tuple[dict[str, Any] | None, str]:
    """The headline's report and its path as the README names it (the first of HEADLINE_REPORTS there)."""
    for file_name in HEADLINE_REPORTS:
        path = reports / file_name
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8")), shown(path)
    return None, shown(reports / HEADLINE_REPORTS[0])


def readme_block(readme: str, block: str) -> str:
    """``readme`` with the text between the headline markers replaced by ``block``."""
    start, end = readme.find(HEADLINE_BEGIN), readme.find(HEADLINE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no headline block: put {HEADLINE_BEGIN} and {HEADLINE_END} "
                         "on lines of their own where the table goes")
    return readme[:start + len(HEADLINE_BEGIN)] + "\n" + block + readme[end:]


def render(name: str, report: dict[str, Any] | None, path: str = "") -> str:
    """One docs fragment: the table and its source (``path``: the report's, as the page names it), or how to
    make the report."""
    if report is None or ("provenance" not in report and name not in LEGACY):  # these predate provenance
        command = "python benchmarks/run.py" + ("" if name != "tune" else " --only tune")
        return f"No report has been committed for this table yet: `{command}` measures it.\n"
    results = report["results"] if "provenance" in report else report
    return RENDERERS[name](results) + source(path or f"benchmarks/reports/{name}.json", report)


def read(reports: Path, name: str) -> dict[str, Any] | None:
    path = reports / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def shown(path: Path) -> str:
    """A report's path as a page names it: relative to the repository where it is inside."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def fragments(reports: Path = REPORTS) -> dict[str, str]:
    return {f"{name}.inc.md": render(name, read(reports, name), shown(reports / f"{name}.json")) for name in RENDERERS}


def rendered(reports: Path = REPORTS, out: Path = DOCS, readme: Path | None = README) -> dict[Path, str]:
    """Every file this script writes, with the text it should hold (``readme`` None: no headline)."""
    files = {out / file_name: text for file_name, text in fragments(reports).items()}
    if readme is not None:
        report, path = headline_source(reports)
        files[readme] = readme_block(readme.read_text(encoding="utf-8"), headline(report, path))
    return files


def write(reports: Path = REPORTS, out: Path = DOCS, readme: Path | None = README) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in rendered(reports, out, readme).items():
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(reports: Path = REPORTS, out: Path = DOCS, readme: Path | None = README) -> list[str]:
    """A unified diff per file that differs from what its report renders (empty: all current)."""
    try:
        files = rendered(reports, out, readme)
    except ValueError as exc:  # a README without its headline markers
        return [str(exc)]
    problems = []
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            problems.append("".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                         str(path), "rendered from the report")))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--out", type=Path, default=DOCS)
    parser.add_argument("--readme", type=Path, default=README, help="the file holding the headline block")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.reports, args.out, args.readme)
        for problem in problems:
            print(problem)
        if problems:
            print("the benchmark tables of the docs or README differ from the reports: run "
                  "`python benchmarks/render.py`",
                  file=sys.stderr)
        return 1 if problems else 0
    try:
        written = write(args.reports, args.out, args.readme)
    except ValueError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
