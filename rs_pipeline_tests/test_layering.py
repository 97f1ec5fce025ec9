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
