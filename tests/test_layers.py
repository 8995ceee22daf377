"""The package's layers import downwards only: no module imports (at any depth) one that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vaemanifold"


def modules() -> dict[str, Path]:
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def imports(name: str, file: Path, known: dict) -> set[str]:
    """The package modules that ``file`` imports anywhere in it (function bodies included)."""
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").startswith("vaemanifold"):
                base = node.module
            else:
                continue
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name in known}
    return out & set(known)


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(name, file, known) for name, file in known.items()}

    def reachable(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        return seen

    # a package's __init__ importing its own modules is how packages work; anything else closing a loop is not
    cycles = sorted(
        (a, b) for a in graph for b in graph[a] if a in reachable(b) and not b.startswith(a + ".")
    )
    assert not cycles, "import cycles: " + "; ".join(f"{a} -> {b}" for a, b in cycles)


def test_the_markdown_table_writer_escapes_cells_and_checks_row_lengths():
    import pytest

    from vaemanifold.evaluation.tables import markdown_table

    assert markdown_table(("a", "b"), [(1, "x|y")]) == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        markdown_table(("a", "b"), [(1,)])
