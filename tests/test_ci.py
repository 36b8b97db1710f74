"""The README's set-up contract: its test command is exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(VENV)]


def ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if "the README's test command, verbatim" in line)
    return next(line for line in lines[marker + 1:] if line.startswith("pip install"))


def test_readme_opens_with_the_two_setup_commands_and_the_second_is_ci_verbatim() -> None:
    commands = readme_commands()
    assert len(commands) >= 2, "the README must open with the classify and the test set-up commands"
    classify, tests = commands[:2]
    assert " lpclassify classify " in classify
    assert tests == VENV + ci_test_command()


def test_ci_runs_ruff_builds_the_docs_and_lets_nothing_skip() -> None:
    command = ci_test_command()
    assert "ruff check ." in command and "mkdocs build --strict" in command
    assert "LPCLASSIFY_NO_SKIPS=1" in command and "-rs" in command
