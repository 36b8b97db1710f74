"""The package's shape, kept: small modules, no import cycles (lazy ones too), no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lpclassify"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, type_checking: bool = False) -> list[tuple[str, list[str]]]:
    """(module, names) for every import of the package's own modules, imports inside functions too.

    Imports under ``if TYPE_CHECKING:`` never run; with ``type_checking`` they count all the same:
    a module that names another's types depends on it as surely as one that calls it.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set() if type_checking else {
        id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
        and getattr(block.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(block)}
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == "lpclassify":
                found.append((target, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "lpclassify"]
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(target: str, names: list[str]) -> list[str]:
    """The modules an import runs: the target, and submodules imported by name (``from . import x``)."""
    out = [target] if target in MODULES else []
    out += [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
    return out


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_module_imports_a_private_name_from_another() -> None:
    private = [(name, target, imported) for name, path in MODULES.items() for target, names in imports(path)
               for imported in names if imported.startswith("_") and not imported.endswith("__") and target != name]
    assert private == []


def import_cycles(*, type_checking: bool) -> list[list[str]]:
    # A module's package __init__ runs before it, so importing a.b.c also runs a and a.b.
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for target, names in imports(path, type_checking=type_checking):
            for module in resolve(target, names):
                parts = module.split(".")
                edges |= {".".join(parts[:k]) for k in range(2, len(parts) + 1)} - {name}
        graph[name] = {edge for edge in edges if edge in MODULES and not name.startswith(edge + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    assert import_cycles(type_checking=False) == []


def test_no_import_cycles_counting_type_checking_imports() -> None:
    """The layers, as the types see them: low-level maths never names the config or the classifier."""
    assert import_cycles(type_checking=True) == []
