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


# The floors of `core`, lowest first. A package imports only packages on floors below its own
# (never one beside it), so no import can close a circle. A new package must be placed here.
FLOORS: tuple[frozenset[str], ...] = (
    # keys, names, schemas, hashing, vocabularies, prompts, config, device, the store, progress
    frozenset(
        {
            "records",
            "names",
            "seeds",
            "vocabulary",
            "prompts",
            "answers",
            "device",
            "config",
            "artifacts",
            "progress",
        }
    ),
    frozenset({"layout", "parquet_sql"}),  # every stage's folders; SQL over Parquet
    frozenset({"lineage"}),  # the DuckDB lineage store
    frozenset({"previews"}),  # first rows and score values read back for asset metadata
    # what images come from; model architectures; reward shaping and the scorer's HTTP client
    frozenset({"sources", "models", "rewards"}),
    frozenset({"ingest", "landing"}),
    frozenset({"captions"}),
    frozenset({"pairs"}),
    frozenset({"training"}),  # the library: contrastive loop, schedule, snapshots
    frozenset({"scoring"}),
    frozenset({"selection"}),
    frozenset({"evaluation"}),
    # train and evaluate a CLIP / a VLM per selection; serve a scorer over HTTP
    frozenset({"finetune", "vlm", "serving"}),
)


def _module_name(path: Path) -> str:
    return ".".join(("rs_pipeline", "core", *path.relative_to(CORE).with_suffix("").parts))


def _core_imports(path: Path) -> set[str]:
    """Modules of `rs_pipeline.core` that `path` imports anywhere (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("rs_pipeline.core."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rs_pipeline.core.")}
    return found


def _package_of(module: str) -> str:
    return module.split(".")[2]


def _package_edges() -> dict[str, set[str]]:
    """core package (or top-level module) -> the other core packages it imports, anywhere."""
    edges: dict[str, set[str]] = {}
    for p in sorted(CORE.rglob("*.py")):
        src = _package_of(_module_name(p)) if p.parent != CORE or p.name != "__init__.py" else ""
        for module in _core_imports(p):
            if src and _package_of(module) != src:
                edges.setdefault(src, set()).add(_package_of(module))
    return edges


def _floor_of() -> dict[str, int]:
    return {pkg: i for i, floor in enumerate(FLOORS) for pkg in floor}


def test_every_core_package_has_a_floor():
    packages = {p.name if p.is_dir() else p.stem for p in CORE.iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert sorted(packages - set(_floor_of())) == [], "add the new package to FLOORS"


def test_core_packages_import_only_from_lower_floors():
    floor = _floor_of()
    upward = sorted(
        f"{src} (floor {floor[src]}) imports {dst} (floor {floor[dst]})"
        for src, dsts in _package_edges().items()
        for dst in dsts
        if floor[dst] >= floor[src]
    )
    assert upward == []


def test_core_modules_import_without_cycles():
    edges = {_module_name(p): _core_imports(p) for p in CORE.rglob("*.py")}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        visit(start, [start])
    assert cycles == []
