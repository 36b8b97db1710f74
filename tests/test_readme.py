"""The README stays a short front page: a length limit, links that resolve, commands that parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from lpclassify.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_at_most_150_lines() -> None:
    assert len(README.splitlines()) <= 150, "move the detail into a docs/ page and link to it"


def test_every_relative_link_of_the_readme_names_a_file() -> None:
    links = [target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README) if "://" not in target]
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_every_readme_command_parses() -> None:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            for part in line.split(" && "):
                for piece in part.split(" | "):
                    words = shlex.split(piece, comments=True)
                    if words[:1] == ["lpclassify"]:
                        commands.append(words[1:])
    assert len(commands) >= 8
    for argv in commands:
        assert build_parser().parse_args(argv).command == argv[0], argv
