"""The docs site stays true: its commands parse, its runnable examples run, its tables match the reports.

* every ``lpclassify ...`` line in a ```` ```bash ```` block of ``docs/`` parses with the real
  argument parser (no model, milliseconds);
* a block preceded by ``<!-- test: run -->`` is run as written, in the repository root, and must
  exit 0 (these name ``--model smollm2-135m``, the small test model);
* every benchmark table under ``docs/benchmarks/`` is what ``benchmarks/render.py`` makes from
  the committed report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lpclassify.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(?P<mark><!-- test: run -->\n)?```bash\n(?P<body>.*?)```", re.DOTALL)


def bash_blocks() -> list[tuple[str, bool, str]]:
    """(page, runnable, body) for every bash block of the docs."""
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            blocks.append((page.relative_to(ROOT).as_posix(), bool(match["mark"]), match["body"]))
    return blocks


def commands(body: str) -> list[list[str]]:
    """The argument lists of the ``lpclassify`` commands in a block (after a pipe too; comments dropped)."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():  # a line ending in a backslash goes on
        for part in line.split(" && "):
            for piece in part.split(" | "):
                words = shlex.split(piece, comments=True)
                if words[:1] == ["lpclassify"]:
                    out.append(words[1:])
    return out


BLOCKS = bash_blocks()
COMMANDS = [(page, argv) for page, _, body in BLOCKS for argv in commands(body)]
RUNNABLE = [(page, body) for page, runnable, body in BLOCKS if runnable]


def test_the_docs_have_commands_and_runnable_examples() -> None:
    assert len(COMMANDS) > 20
    assert len(RUNNABLE) >= 5


@pytest.mark.parametrize(("page", "argv"), COMMANDS, ids=[f"{p}:{' '.join(a)[:40]}" for p, a in COMMANDS])
def test_every_documented_command_parses(page: str, argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of saying no
        pytest.fail(f"{page}: `lpclassify {shlex.join(argv)}` does not parse (exit {exc.code})")
    assert args.command == argv[0]


def test_a_broken_command_would_be_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["classify", "--no-such-option", "-c", "sentiment"])


@pytest.mark.model
@pytest.mark.slow  # a process and a model load per example: seconds each
@pytest.mark.parametrize(("page", "body"), RUNNABLE, ids=[f"{p}:{b.split()[1]}" for p, b in RUNNABLE])
def test_runnable_examples_run(page: str, body: str, smollm2: str) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this Python's `lpclassify`
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": path}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{page}:\n{body}\nexit {done.returncode}\n{done.stderr[-2000:]}"
    assert done.stdout.strip(), f"{page}: the example printed nothing"


def test_benchmark_tables_are_what_the_reports_render() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import render

    problems = render.check()
    assert not problems, "run `python benchmarks/render.py`:\n" + "\n".join(problems)


def test_render_check_sees_an_edited_table(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import render

    readme = tmp_path / "README.md"
    readme.write_text(render.README.read_text(encoding="utf-8"), encoding="utf-8")
    render.write(render.REPORTS, tmp_path, readme)
    assert render.check(render.REPORTS, tmp_path, readme) == []
    page = tmp_path / "tune.inc.md"
    page.write_text(page.read_text(encoding="utf-8").replace("%", " percent", 1), encoding="utf-8")
    assert render.check(render.REPORTS, tmp_path, readme)


def test_render_check_sees_an_edited_or_missing_readme_headline(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import render

    readme = tmp_path / "README.md"
    readme.write_text(render.README.read_text(encoding="utf-8"), encoding="utf-8")
    render.write(render.REPORTS, tmp_path, readme)
    text = readme.read_text(encoding="utf-8")
    block = text[text.index(render.HEADLINE_BEGIN):text.index(render.HEADLINE_END)]
    assert "| `sentiment` |" in block  # the table is in the block, not elsewhere
    readme.write_text(text.replace(block, block.replace(" %", "%", 1)), encoding="utf-8")
    assert render.check(render.REPORTS, tmp_path, readme)
    readme.write_text(text.replace(render.HEADLINE_END, ""), encoding="utf-8")
    assert any("no headline block" in problem for problem in render.check(render.REPORTS, tmp_path, readme))


def test_the_headline_prefers_the_current_trust_report(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import render

    report = {"command": "c", "commit": "abc", "configs_from": "working tree", "machine": {}, "complete": False,
              "configs": {"spam": {"n": 4, "n_obvious": 2, "obvious_accuracy": 0.5, "accuracy": 0.25,
                                   "abstained": 1, "mode": "single", "model": "m.gguf", "calibration": "pmi",
                                   "n_examples": 4, "commit": "def"}}}
    (tmp_path / "trust-before.json").write_text(json.dumps({**report, "commit": "old"}), encoding="utf-8")
    old, path = render.headline_source(tmp_path)
    assert old is not None and old["commit"] == "old"
    assert "before their latest re-tuning" in render.headline(old, path)
    (tmp_path / "trust.json").write_text(json.dumps(report), encoding="utf-8")
    new, path = render.headline_source(tmp_path)
    text = render.headline(new, path)
    assert path.endswith("trust.json") and "before their latest" not in text
    assert "| `spam` | m.gguf | pmi, 4 | 4 (2) | 50.0 % | 25.0 % | 1 |" in text
    assert "`def`" in text and "incomplete run" in text
