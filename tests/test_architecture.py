"""The package map holds: arrows point one way (data <- profile <- features <- model <- evaluate/explain <- cli/ui),
no import cycles, Streamlit only in the glue. See docs/architecture.md."""
from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "core"
# Cross-cutting modules (rank 0) may be imported from anywhere; each package may import only its own rank or below.
RANKS = {"errors": 0, "settings": 0, "fmt": 0, "atomic": 0, "auth": 0, "audit": 0, "jobs": 0, "charts": 0,
         "data": 1, "workspace": 1, "profile": 2, "features": 3, "model": 4, "evaluate": 5, "explain": 6,
         "cli": 7, "ui": 7, "server": 8, "__main__": 8}
# Deliberate arrows against the direction, each with its reason.
ALLOWED_UP = {
    # The SQL sandbox's fork server imports the recipe preview once, before it forks, so that the preview's
    # operations (registered with sqlworker.operation) exist in every child.
    ("core.data.sqlworker", "core.features.preview"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "core":
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in modules:  # `from core.data import engine` names a module; `import x` a name
                    t = t.rpartition(".")[0]
                if t and t != name and t != "core":
                    graph[name].add(t)
    return graph


def _rank(module: str) -> int:
    return RANKS[module.split(".")[1]] if module != "core" else 0


def test_every_module_has_a_place_on_the_map():
    unknown = sorted(m for m in _graph() if m != "core" and m.split(".")[1] not in RANKS)
    assert unknown == [], f"add these to the package map (RANKS, docs/architecture.md): {unknown}"


def test_arrows_point_one_way():
    wrong = sorted((a, b) for a, deps in _graph().items() for b in deps
                   if _rank(b) > _rank(a) and (a, b) not in ALLOWED_UP)
    assert wrong == [], "imports against the direction data <- profile <- features <- model <- evaluate/explain " \
                        f"<- cli/ui: {wrong}"


def _allowed_edge(a: str, b: str) -> bool:
    """recipe <-> steps: the step kinds register with the recipe, which loads them when first asked."""
    steps = lambda m: m == "core.features.steps" or m.startswith("core.features.steps.")  # noqa: E731
    return (a, b) in ALLOWED_UP or (a == "core.features.recipe" and steps(b)) or \
        (steps(a) and (b == "core.features.recipe" or steps(b)))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets (one per back edge)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles():
    graph = {a: {b for b in deps if not _allowed_edge(a, b)} for a, deps in _graph().items()}
    assert find_cycles(graph) == [], f"import cycles: {find_cycles(graph)}"


def test_the_cycle_search_finds_a_planted_cycle():
    graph = {**_graph()}
    graph["core.data.engine"] = graph["core.data.engine"] | {"core.model.train"}
    assert any("core.data.engine" in c for c in find_cycles(graph))


def test_streamlit_only_in_the_glue():
    users = sorted(_module(p) for p in CORE.rglob("*.py")
                   if any(isinstance(n, ast.Import | ast.ImportFrom) and "streamlit" in
                          ((n.module or "") if isinstance(n, ast.ImportFrom) else " ".join(a.name for a in n.names))
                          for n in ast.walk(ast.parse(p.read_text()))))
    assert users == ["core.server", "core.ui"], users


def test_the_direction_check_can_fail():
    """A test that cannot fail is a defect: an upward arrow is reported."""
    assert _rank("core.model.train") > _rank("core.data.engine")
    assert ("core.data.engine", "core.model.train") not in ALLOWED_UP
