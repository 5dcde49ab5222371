"""The architecture page's code map names every module of the apps and the project: a module
added without a line there fails here, so the map stays true."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAPPED = ("apps/workers", "apps/ops", "loadtest_project", "apps/sessions")
# Folders of apps/sessions the map names as a whole (``admin/``, ``api/``...), one line each.
NAMED_AS_FOLDERS = ("admin", "api", "dashboard", "cli", "templatetags", "migrations")


def modules() -> list[str]:
    """Each module as the map writes it: its path inside its package's section."""
    found = []
    for package in MAPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT / package)
            if relative.name == "__init__.py" and len(relative.parts) > 1:
                continue  # a sub-package: its modules are named, each on its line
            if package == "apps/sessions" and relative.parts[0] in NAMED_AS_FOLDERS:
                found.append(f"{package}:{relative.parts[0]}/")
            else:
                found.append(f"{package}:{relative.as_posix()}")
    return sorted(set(found))


@pytest.mark.parametrize("module", modules())
def test_the_code_map_names_every_module(module):
    package, name = module.split(":")
    text = ARCHITECTURE.read_text()
    section = text.split(f"### `{package}/`", 1)[1].split("\n### ", 1)[0]
    assert f"`{name}`" in section, f"{package}/{name} is not in docs/architecture.md's code map"


def test_the_check_sees_a_missing_module():
    text = ARCHITECTURE.read_text()
    assert "`shard.py`" in text and "`no_such_module.py`" not in text
