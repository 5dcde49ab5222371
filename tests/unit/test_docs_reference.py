"""The docs' reference pages stay complete, and the README's links lead somewhere: every
environment variable the service reads is in docs/reference/configuration.md, every route of
the API's URL configuration is in docs/reference/api.md, and every relative link of README.md
names a file that exists. Pure: it reads source files and the URL resolver, starts nothing.
(`mkdocs build --strict`, a static check, catches broken links inside docs/.)"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from itertools import product
from pathlib import Path

from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION_PAGE = ROOT / "docs" / "reference" / "configuration.md"
API_PAGE = ROOT / "docs" / "reference" / "api.md"
# Where the service reads its environment: Python modules (settings through django-environ,
# management commands and scripts through os.environ), and the process definitions.
PYTHON_SOURCES = ("loadtest_project", "apps", "scripts", "demo_target")
PROCESS_FILES = ("Procfile", "docker-compose.yml")
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
ENV_READERS = {"str", "int", "float", "bool", "list", "db_url", "url", "json", "path", "get"}


def _python_files() -> Iterator[Path]:
    for folder in PYTHON_SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _is_environment(node: ast.expr) -> bool:
    """``os.environ``, ``environ`` or django-environ's ``env`` object."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def _reads_environment(call: ast.Call) -> bool:
    """``env.str(...)``, ``os.environ.get(...)``, ``os.getenv(...)`` and the like."""
    function = call.func
    if isinstance(function, ast.Attribute):
        if function.attr == "getenv":
            return True
        return function.attr in ENV_READERS and _is_environment(function.value)
    return False


def _first_argument(call: ast.Call) -> ast.expr | None:
    return call.args[0] if call.args else None


def variables_read(source: str) -> set[str]:
    """The names of the environment variables a module reads. A helper that reads the variable
    named by its first parameter (``_bounded_float("FEED_MAX_BYTES", ...)``) counts too."""
    tree = ast.parse(source)
    helpers = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.args.args:
            parameter = function.args.args[0].arg
            for call in ast.walk(function):
                argument = isinstance(call, ast.Call) and _first_argument(call)
                named = isinstance(argument, ast.Name) and argument.id == parameter
                if named and _reads_environment(call):
                    helpers.add(function.name)
    names = set()
    for node in ast.walk(tree):
        argument = None
        if isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else None
            if _reads_environment(node) or called in helpers:
                argument = _first_argument(node)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if _is_environment(node.value):
                argument = node.slice
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            argument = node.left if _is_environment(node.comparators[0]) else None
        text = argument.value if isinstance(argument, ast.Constant) else None
        if isinstance(text, str) and VARIABLE.fullmatch(text):
            names.add(text)
    return names


def documented_variables() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]*)`", CONFIGURATION_PAGE.read_text()))


def test_the_scan_finds_variables_however_they_are_read():
    source = (
        "import os\nimport environ\nenv = environ.Env()\n"
        'A = env.float("A_S", default=1.0)\nB = os.environ.get("B_URL")\n'
        'C = os.environ["C_NAME"]\nD = "D_SET" in os.environ\nE = os.getenv("E_DIR")\n'
        "def _bounded(name, default):\n    return env.str(name, default=str(default))\n"
        'F = _bounded("F_MAX", 3)\nos.environ.setdefault("NOT_READ", "1")\n'
    )
    assert variables_read(source) == {"A_S", "B_URL", "C_NAME", "D_SET", "E_DIR", "F_MAX"}


def test_every_environment_variable_read_is_in_the_configuration_reference():
    read = {}
    for path in _python_files():
        for name in variables_read(path.read_text()):
            read.setdefault(name, path.relative_to(ROOT).as_posix())
    for name in PROCESS_FILES:
        for variable in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / name).read_text()):
            read.setdefault(variable, name)
    assert "MONITOR_INTERVAL_S" in read and "FEED_MAX_BYTES" in read  # the scan works

    missing = {name: where for name, where in read.items() if name not in documented_variables()}

    assert not missing, f"read but not in {CONFIGURATION_PAGE.relative_to(ROOT)}: {missing}"


def _routes(patterns: list, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def normalise(route: str) -> str:
    """``api/^sessions/(?P<pk>[^/.]+)/start/$`` and ``/api/sessions/{id}/start/`` alike
    become ``/api/sessions/{}/start/``."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<\w+>[^)]*\)|<[\w:]+>|\{[^{}/,]*\}", "{}", route)
    return "/" + route.lstrip("/")


def api_routes() -> set[str]:
    """Every route under /api/, without DRF's format-suffix twins (``.json``)."""
    routes = _routes(get_resolver().url_patterns)
    return {
        normalise(route) for route in routes if route.startswith("api/") and "format" not in route
    }


def _expanded(path: str) -> Iterator[str]:
    """``/api/{sessions,targets}/{id}/history/``: one path per alternative."""
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", path)
    choices = [[part] if index % 2 == 0 else part.split(",") for index, part in enumerate(parts)]
    for chosen in product(*choices):
        yield "".join(chosen)


def documented_routes() -> set[str]:
    paths = re.findall(r"/api/[\w{},/<>.-]*", API_PAGE.read_text())
    return {normalise(expanded) for path in paths for expanded in _expanded(path.rstrip("."))}


def test_normalising_routes_and_documented_paths():
    assert normalise("api/^sessions/(?P<pk>[^/.]+)/start/$") == "/api/sessions/{}/start/"
    assert normalise("api/targets/<int:pk>/feed/") == "/api/targets/{}/feed/"
    assert normalise("/api/sessions/{id}/start/") == "/api/sessions/{}/start/"
    assert set(_expanded("/api/{sessions,targets}/{id}/history/")) == {
        "/api/sessions/{id}/history/",
        "/api/targets/{id}/history/",
    }


def test_every_api_route_is_in_the_api_reference():
    routes = api_routes()
    assert {"/api/sessions/{}/start/", "/api/targets/{}/feed/", "/api/"} <= routes  # it works

    missing = sorted(routes - documented_routes())

    assert not missing, f"routes not in {API_PAGE.relative_to(ROOT)}: {missing}"


def test_every_relative_link_of_the_readme_names_an_existing_file():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not re.match(r"[a-z]+:|#", link)]
    assert any(link.startswith("docs/") for link in relative)  # it links into the docs

    missing = [link for link in relative if not (ROOT / link.split("#")[0]).exists()]

    assert not missing, f"README.md links to files that do not exist: {missing}"


def _first_session_body(markdown: str) -> dict:
    """The JSON body of the first `POST $API/sessions/` under `## A first load test`."""
    section = markdown.split("## A first load test", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"\$API/sessions/ \\\s+-d '(\{.*?\})'", section, re.DOTALL)
    assert match, "no `curl ... -X POST $API/sessions/ -d '{...}'` under '## A first load test'"
    return json.loads(match.group(1))


def test_getting_started_shows_the_readmes_first_session():
    """tests/test_readme_example.py runs the README's; the docs must not drift from it."""
    readme = _first_session_body((ROOT / "README.md").read_text())
    docs = _first_session_body((ROOT / "docs" / "getting-started.md").read_text())

    assert docs == readme
