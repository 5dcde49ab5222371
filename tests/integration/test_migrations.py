"""Migrations do not import live code: what an old migration does to a fresh database must not
change when the code it once used changes. The roles migration carries its own frozen table;
the ``prepare`` command then brings the groups to the live table in apps/sessions/roles.py."""

from __future__ import annotations

import ast
import importlib
import os
import sqlite3
import subprocess
import sys
from importlib.util import resolve_name
from pathlib import Path

import pytest

from apps.sessions.access.roles import ROLE_PERMISSIONS

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted(ROOT.glob("apps/*/migrations/0*.py"))
# What `import X` can name in this project: its top-level packages and modules.
PROJECT_TOP_LEVEL = {
    path.stem for path in ROOT.iterdir() if (path / "__init__.py").exists() or path.suffix == ".py"
}
# Validators are referenced by their import path in a field's definition, as makemigrations
# writes them: the accepted Django pattern, as long as the function stays importable (README,
# Development). Nothing else of the project's may be imported.
IMPORTABLE_PROJECT_MODULES = ("apps.sessions.validation",)


def imported_names(source: str, package: str) -> set[str]:
    """Every dotted name the source imports, at the top or inside a function, relative
    imports resolved against ``package``: ``from apps.sessions import roles`` gives
    ``apps.sessions.access.roles``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_name("." * node.level + (node.module or ""), package)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def live_code_imported(source: str, package: str) -> set[str]:
    return {
        name
        for name in imported_names(source, package)
        if name.split(".")[0] in PROJECT_TOP_LEVEL
        and not any(
            name == allowed or name.startswith(f"{allowed}.")
            for allowed in IMPORTABLE_PROJECT_MODULES
        )
    }


def test_migrations_are_found():
    assert {path.name for path in MIGRATIONS} >= {"0001_initial.py", "0002_roles.py"}


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda path: path.name)
def test_no_migration_imports_live_project_code(path):
    package = ".".join(path.relative_to(ROOT).parent.parts)
    assert not live_code_imported(path.read_text(), package)


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    """The old 0002 imported roles inside its functions; the check must see such imports."""
    source = (
        "import apps.sessions.validation\n"
        "from django.db import migrations\n"
        "def create_roles(apps, schema_editor):\n"
        "    from apps.sessions.access.roles import sync_roles\n"
        "    from .. import services\n"
        "    from ..models import Target\n"
    )
    assert live_code_imported(source, "apps.sessions.migrations") == {
        "apps.sessions.access.roles.sync_roles",
        "apps.sessions.services",
        "apps.sessions.models.Target",
    }


def group_permissions(database: Path) -> dict[str, set[str]]:
    """Each group's permissions, as ``app_label.codename``, read from the database itself."""
    query = """
        SELECT g.name, ct.app_label || '.' || p.codename
        FROM auth_group g
        LEFT JOIN auth_group_permissions gp ON gp.group_id = g.id
        LEFT JOIN auth_permission p ON p.id = gp.permission_id
        LEFT JOIN django_content_type ct ON ct.id = p.content_type_id
    """
    groups: dict[str, set[str]] = {}
    with sqlite3.connect(database) as connection:
        for group, permission in connection.execute(query):
            groups.setdefault(group, set())
            if permission is not None:
                groups[group].add(permission)
    return groups


@pytest.mark.integration
def test_roles_migration_applies_its_frozen_table_and_prepare_repairs_to_the_live_one(
    tmp_path, redis_url
):
    frozen = importlib.import_module("apps.sessions.migrations.0002_roles").ROLE_PERMISSIONS
    database = tmp_path / "db.sqlite3"
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=f"sqlite:///{database}", DATA_DIR=str(tmp_path), REDIS_URL=redis_url,
               DEBUG="False", SECRET_KEY="migrations-test-key",
               ADMIN_PASSWORD="migrations-test-password")  # fmt: skip

    def manage(*args: str) -> None:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=180)  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    manage("migrate", "loadtests", "0002_roles")
    assert group_permissions(database) == {role: set(names) for role, names in frozen.items()}

    # Groups edited since, or deleted: prepare (migrate, then sync_roles) repairs them.
    with sqlite3.connect(database) as connection:
        connection.execute(
            "DELETE FROM auth_group_permissions WHERE group_id = "
            "(SELECT id FROM auth_group WHERE name = 'operator')"
        )
        connection.execute(
            "DELETE FROM auth_group_permissions WHERE group_id = "
            "(SELECT id FROM auth_group WHERE name = 'admin')"
        )
        connection.execute("DELETE FROM auth_group WHERE name = 'admin'")
    manage("prepare")
    assert group_permissions(database) == {
        role: set(names) for role, names in ROLE_PERMISSIONS.items()
    }
