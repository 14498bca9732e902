"""The house's floors, read from the import graph: no cycles, nothing imports upward, no module over 400 lines.

Every `import` counts, also those inside functions (they are real dependencies, only later); imports under
`if TYPE_CHECKING:` are listed apart (`TYPING_ONLY`), since they never run. Floors, top to bottom, in the
direction data flows (settings -> plan -> steps -> report):

    entrances   tasks.py, lab/__init__ (the lazy public surface), lab/testing (other projects' tests)
    operations  lab.plan, lab.status, lab.rotation, lab.report, lab/steps, lab/workshop, lab/doctor,
                lab/learn, lab/kit: what uses several sides at once
    sides       lab/container, lab/amlen, lab/clients, lab/pki, lab.hosts (+ lab.hostsfile), lab.elevate
    ground      lab.settings (+ lab.values), lab.errors, lab.events, lab.files, lab.ledger, lab.deadline,
                lab.version, lab.durations (how a figure is printed)

A room is a package under lab/ or a top-level module; sideways imports within a floor are fine as long as
rooms form no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

FLOORS: dict[str, tuple[str, ...]] = {
    "entrances": ("tasks", "lab", "lab.testing"),
    "operations": ("lab.plan", "lab.status", "lab.rotation", "lab.report", "lab.steps", "lab.workshop",
                   "lab.doctor", "lab.learn", "lab.kit"),
    "sides": ("lab.container", "lab.amlen", "lab.clients", "lab.pki", "lab.hosts", "lab.hostsfile", "lab.elevate"),
    "ground": ("lab.settings", "lab.values", "lab.errors", "lab.events", "lab.files", "lab.ledger", "lab.deadline",
               "lab.version", "lab.durations"),
}
ORDER = list(FLOORS)  # index 0 is the top


def _modules() -> dict[str, Path]:
    found = {"tasks": ROOT / "tasks.py"}
    for path in sorted((ROOT / "lab").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The module a dotted import name lands in (`lab.amlen.admin.AmlenClient` -> `lab.amlen.admin`)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _typing_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(runtime imports, TYPE_CHECKING-only imports) of one module, as lab module names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_nodes = {id(n) for block in ast.walk(tree) if _typing_block(block) for n in ast.walk(block)}
    runtime: set[str] = set()
    typing: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative import (the lab uses absolute imports)"
            base = node.module or ""
            names = [f"{base}.{alias.name}" for alias in node.names]
        targets = {_owner(name) for name in names if name == "lab" or name.startswith(("lab.", "tasks"))}
        targets.discard(module)
        (typing if id(node) in typing_nodes else runtime).update(t for t in targets if t in MODULES)
    return runtime, typing


GRAPH: dict[str, set[str]] = {}
TYPING_ONLY: dict[str, set[str]] = {}
for _name, _path in MODULES.items():
    GRAPH[_name], TYPING_ONLY[_name] = _imports(_name, _path)


def room(module: str) -> str:
    """`lab.amlen.admin` -> `lab.amlen`; `lab.plan` -> `lab.plan`; `lab` and `tasks` are rooms of their own."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def floor(module: str) -> int:
    for index, name in enumerate(ORDER):
        if room(module) in FLOORS[name]:
            return index
    raise AssertionError(f"{module} is on no floor: add its room to FLOORS in tests/test_architecture.py")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_is_on_a_floor() -> None:
    for module in MODULES:
        floor(module)


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    assert _cycles(rooms) == []


def test_nothing_imports_a_higher_floor() -> None:
    upward = sorted(f"{module} ({ORDER[floor(module)]}) -> {target} ({ORDER[floor(target)]})"
                    for module, targets in GRAPH.items() for target in targets if floor(target) < floor(module))
    assert upward == []


def test_type_only_imports_point_down_or_sideways_too() -> None:
    # The names a signature mentions are a dependency of its meaning, even when they are not imported at run time.
    upward = sorted(f"{module} -> {target}" for module, targets in TYPING_ONLY.items() for target in targets
                    if floor(target) < floor(module) and room(target) != room(module))
    assert upward == []


def test_no_module_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): count for name, path in MODULES.items() if name != "tasks"
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_graph_sees_function_level_imports() -> None:
    # lab.doctor imports its check modules inside doctor(): the graph must see that edge, or it proves nothing.
    assert "lab.doctor.amlen" in GRAPH["lab.doctor"]
    assert "lab.container.runtime" in GRAPH["lab.status"]
