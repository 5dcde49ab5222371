"""One-way layers: the project's import graph, read from the source with ``ast``.

The engine (``apps/workers``) is a library the control plane (``apps/sessions``) drives and
the operations commands (``apps/ops``) run: it imports neither. No import cycle anywhere, and
no import hidden inside a function to get round one (imports inside functions are read too).

Inside the control plane, its concerns talk one way too: results never reach into the
lifecycle, integrations only read results and models, and only the surfaces (admin, API,
dashboard, CLI, management commands) and the tasks call the lifecycle's state changes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("apps", "loadtest_project")
ENGINE = "apps.workers"
ABOVE_THE_ENGINE = ("apps.sessions", "apps.ops")

# Imports inside a function that are not there to dodge a cycle, and why. Migrations are left
# out of this rule: what they may import is tests/integration/test_migrations' business.
FUNCTION_LEVEL_ALLOWED = {
    # Django's documented place to connect signal receivers: AppConfig.ready, once every
    # app's models are loaded.
    ("apps.sessions.apps", "ready"): "connects the sign-in lockout's audit receiver",
    ("apps.workers.apps", "ready"): "connects the worker process's signal receivers",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = project_modules()


class Import:
    """One import statement of a project module, resolved to the project modules it loads."""

    def __init__(self, importer: str, targets: set[str], line: int, function: str | None):
        self.importer, self.targets, self.line, self.function = importer, targets, line, function

    def __repr__(self) -> str:
        where = f" in {self.function}()" if self.function else ""
        return f"{self.importer}:{self.line}{where} -> {sorted(self.targets)}"


def _with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)} & MODULES.keys()


def _resolve(importer: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return set().union(*(_with_parents(alias.name) for alias in node.names))
    base = node.module or ""
    if node.level:  # relative: from the importer's package, one level up per extra dot
        package = importer.split(".")
        if MODULES[importer].name != "__init__.py":
            package.pop()
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    found = _with_parents(base)
    for alias in node.names:  # ``from package import module``
        found |= _with_parents(f"{base}.{alias.name}")
    return found - _ancestors(importer)


def _ancestors(name: str) -> set[str]:
    """A module's own packages: they have run before it, so importing a sibling through them
    adds no dependency (``admin/sessions.py`` importing ``admin/common.py``)."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))}


def _type_checking_only(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) with no ``else``."""
    if not isinstance(node, ast.If) or node.orelse:
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, function: str | None) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue  # read by type checkers, never run: no dependency at run time
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = _resolve(name, child) - {name}
                if targets:
                    yield Import(name, targets, child.lineno, function)
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            yield from visit(child, inner)

    yield from visit(tree, None)


IMPORTS = [item for name, path in MODULES.items() for item in _imports_in(name, path)]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for item in IMPORTS:
        graph[item.importer] |= item.targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_graph_is_read():
    """Guard against a parser that sees nothing: known edges are there."""
    graph = import_graph()
    assert "apps.sessions.lifecycle.start" in MODULES and "apps.workers.shard" in MODULES
    assert "apps.workers.control" in graph["apps.sessions.lifecycle.start"]
    assert "apps.workers.shard" in graph["apps.workers.tasks"]
    # Imports inside functions are read too.
    assert any(item.function == "ready" for item in IMPORTS)


def test_no_import_cycle_anywhere():
    assert find_cycles(import_graph()) == []


def test_find_cycles_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_the_engine_imports_nothing_above_it():
    upward = [
        item
        for item in IMPORTS
        if item.importer.startswith(ENGINE)
        and any(target.startswith(ABOVE_THE_ENGINE) for target in item.targets)
    ]
    assert upward == []


@pytest.mark.parametrize("layer", ABOVE_THE_ENGINE)
def test_the_engine_does_not_name_the_layers_above(layer):
    """Not even in a string (a task name, a dotted path, a file path): like ``grep -rn
    "apps.sessions" apps/workers``, whose "." matches any character."""
    naming = [
        str(path.relative_to(ROOT))
        for name, path in MODULES.items()
        if name.startswith(ENGINE) and re.search(layer, path.read_text())
    ]
    assert naming == []


def test_no_function_level_import_of_a_project_module():
    hidden = [
        item
        for item in IMPORTS
        if item.function is not None
        and ".migrations." not in item.importer
        and (item.importer, item.function) not in FUNCTION_LEVEL_ALLOWED
    ]
    assert hidden == []


# --- the control plane's concerns -------------------------------------------------------------

SESSIONS = "apps.sessions"
# What a concern of apps/sessions may import from the others (its own modules aside). Models,
# the shared checks, the vocabularies and the refusals are below everything.
FOUNDATION = {"models", "validation", "choices", "errors"}
CONCERN_MAY_IMPORT = {
    "models": {"validation", "choices"},
    "validation": {"models", "choices", "results"},  # results.thresholds: the syntax check
    "choices": set(),
    "errors": set(),
    "access": FOUNDATION,
    "catalog": FOUNDATION | {"access"},
    "results": FOUNDATION | {"access", "api"},
    "integrations": FOUNDATION | {"access", "results"},
    "lifecycle": FOUNDATION | {"access", "catalog", "results", "integrations", "api"},
}
# The surfaces and the tasks may import any concern: they are what people and beat drive.
SURFACES = ("admin", "api", "dashboard", "cli", "tasks", "apps", "templatetags")


def concern_of(module: str) -> str | None:
    """``apps.sessions.results.figures`` -> ``results``; None outside apps/sessions."""
    parts = module.split(".")
    if parts[:2] != SESSIONS.split(".") or len(parts) < 3:
        return None
    return parts[2]


def concern_imports() -> list[tuple[str, str, str]]:
    """(importer, imported module, imported concern) for every import across two concerns."""
    found = []
    for item in IMPORTS:
        own = concern_of(item.importer)
        for target in item.targets:
            other = concern_of(target)
            if own and other and own != other and ".migrations" not in item.importer:
                found.append((item.importer, target, other))
    return found


def test_every_concern_of_the_control_plane_is_known():
    """A new folder of apps/sessions must say here what it may import."""
    concerns = {concern_of(name) for name in MODULES} - {None, "migrations"}
    assert concerns <= set(CONCERN_MAY_IMPORT) | set(SURFACES)


@pytest.mark.parametrize("concern", sorted(CONCERN_MAY_IMPORT))
def test_a_concern_imports_only_what_is_below_it(concern):
    allowed = CONCERN_MAY_IMPORT[concern]
    upward = [
        f"{importer} -> {target}"
        for importer, target, other in concern_imports()
        if concern_of(importer) == concern and other not in allowed
    ]
    assert upward == []


def test_results_never_reach_into_the_lifecycle():
    assert "lifecycle" not in CONCERN_MAY_IMPORT["results"]
    assert not [
        (importer, target)
        for importer, target, other in concern_imports()
        if concern_of(importer) == "results" and other == "lifecycle"
    ]


def test_only_surfaces_and_tasks_call_the_lifecycle():
    """The lifecycle's state changes (start, stop, live changes, finish...) are called by
    the admin, the API, the dashboard, the CLI, the management commands and the tasks; no
    other concern drives a session."""
    callers = {
        item.importer
        for item in IMPORTS
        for target in item.targets
        if concern_of(target) == "lifecycle" and concern_of(item.importer) != "lifecycle"
    }
    outside = sorted(
        caller
        for caller in callers
        if concern_of(caller) not in SURFACES and not caller.startswith("apps.ops.")
    )
    assert outside == []
    assert "apps.sessions.api.views" in callers and "apps.sessions.tasks" in callers


def test_the_concern_graph_is_read():
    """Guard against rules that pass on an empty graph: known edges across concerns are seen."""
    edges = {(importer, other) for importer, _, other in concern_imports()}
    assert ("apps.sessions.lifecycle.monitor", "results") in edges
    assert ("apps.sessions.api.views", "lifecycle") in edges
