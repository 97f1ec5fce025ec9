"""`core` is plain Python + torch: the Dagster layer depends on it, never the reverse."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "rs_pipeline" / "core"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_dagster():
    offenders = [
        str(p.relative_to(CORE))
        for p in sorted(CORE.rglob("*.py"))
        if {"dagster", "dagster_aws"} & imported_modules(p)
    ]
    assert offenders == []


def test_core_never_imports_the_dagster_layer():
    offenders = []
    for p in sorted(CORE.rglob("*.py")):
        text = p.read_text()
        if "rs_pipeline.defs" in text or "rs_pipeline.definitions" in text:
            offenders.append(str(p.relative_to(CORE)))
    assert offenders == []


def _package_edges() -> dict[str, set[str]]:
    """core package (or top-level module) -> the other core packages it imports, anywhere."""
    edges: dict[str, set[str]] = {}
    for p in sorted(CORE.rglob("*.py")):
        rel = p.relative_to(CORE).parts
        src = rel[0] if len(rel) > 1 else rel[0][: -len(".py")]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["rs_pipeline", "core"] and len(parts) > 2 and parts[2] != src:
                    edges.setdefault(src, set()).add(parts[2])
    return edges


def test_core_packages_import_without_cycles():
    edges, cycles = _package_edges(), []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            else:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert cycles == []
