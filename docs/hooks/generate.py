"""Docs fragments generated from the code, so that they cannot drift from it.

MkDocs runs this as a hook before every build (``hooks:`` in mkdocs.yml). It writes into
``docs/generated/`` (build output: git ignores it), and pages include the files with ``--8<--``:

* ``cli-<command>.inc.md``: each command's ``--help``, verbatim, from ``lpclassify.cli.build_parser``;
* ``layout.inc.md``: every module of the package with the first line of its docstring;
* ``errors.inc.md``: the exception tree of ``lpclassify.errors``.

    python docs/hooks/generate.py          # write them without building the site
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "generated"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fixed, so the output does not depend on the terminal


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse exposes subparsers only through its actions
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def help_text(parser: argparse.ArgumentParser) -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def fence(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```\n"


def cli_pages() -> dict[str, str]:
    """``{file name: Markdown}``: the top-level help, and per command its help and its subcommands' helps."""
    sys.path.insert(0, str(ROOT))
    from lpclassify.cli import build_parser

    parser = build_parser()
    out = {"cli-lpclassify.inc.md": fence(help_text(parser))}
    for name, command in subcommands(parser).items():
        parts = [fence(help_text(command))]
        for sub in subcommands(command).values():
            parts.append(f"#### `{sub.prog}`\n\n" + fence(help_text(sub)))
        out[f"cli-{name}.inc.md"] = "\n".join(parts)
    return out


def layout() -> str:
    """A table of the package's modules and what each is for (its docstring's first line)."""
    rows = ["| module | what it is for |", "|---|---|"]
    package = ROOT / "lpclassify"
    for path in sorted(package.rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = docstring.strip().split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        name = path.relative_to(ROOT).as_posix()
        rows.append(f"| `{name}` | {first} |")
    return "\n".join(rows) + "\n"


def errors_tree() -> str:
    """``LpclassifyError`` and its subclasses as an indented tree, each with its docstring's first line."""
    sys.path.insert(0, str(ROOT))
    from lpclassify.errors import LpclassifyError

    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        summary = cls.__doc__.strip().splitlines()[0].replace("``", "") if cls.__doc__ else ""
        lines.append(f"{'    ' * depth}{cls.__name__:<{28 - 4 * depth}} {summary}".rstrip())
        for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
            walk(sub, depth + 1)

    walk(LpclassifyError, 0)
    return fence("\n".join(lines))


def pages() -> dict[str, str]:
    return {**cli_pages(), "layout.inc.md": layout(), "errors.inc.md": errors_tree()}


def write(out_dir: Path = OUT) -> list[Path]:
    """Write the fragments; a file whose text is unchanged is left alone (``mkdocs serve`` watches them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def on_pre_build(config: Any, **kwargs: Any) -> None:  # the MkDocs hook
    write()


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
