"""The test command (``scripts/dev.py test``, which CI runs) runs ruff's lint, ruff's format
check, mypy and the docs site's strict build (``mkdocs build --strict``) before pytest, stops
there if one fails, and otherwise ends with pytest's own exit code; ``--no-checks`` skips
them, ``--unit`` runs the unit tier alone. Each test runs the real script, with the real tools
of this virtualenv, in a small project of its own, so that the repository's state does not
matter and the project's mistakes are made on purpose."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the script needs beside itself: the requirement files it installs (unchanged, so that
# it installs nothing into this virtualenv).
COPIED = ("scripts/dev.py", "requirements.txt", "requirements-dev.txt")
PYPROJECT = """\
[tool.ruff]
line-length = 100
[tool.ruff.lint]
select = ["E", "F"]
[tool.mypy]
files = ["engine"]
disallow_untyped_defs = true
[tool.pytest.ini_options]
testpaths = ["tests"]
"""
# A docs site of one page linking to a heading of its own, built with MkDocs' plain theme.
MKDOCS_YML = """\
site_name: calc
validation:
  links:
    anchors: warn
"""
DOCS_INDEX = "# Calc\n\nSee [usage](#usage).\n\n## Usage\n\nDouble a number.\n"
CLEAN_MODULE = "def double(number: int) -> int:\n    return number * 2\n"
TESTS = """\
from engine.calc import double


def test_doubles():
    assert double(2) == 4


def test_fails_on_purpose():
    assert double(2) == 5
"""
# The test module leaves a mark when pytest imports it: the suite ran.
MARKING_TESTS = (
    'import pathlib\n\npathlib.Path("suite-ran").touch()\n\n\ndef test_one():\n    pass\n'
)


def make_project(
    root: Path, module: str = CLEAN_MODULE, tests: str = TESTS, docs: str = DOCS_INDEX
) -> Path:
    for name in COPIED:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "mkdocs.yml").write_text(MKDOCS_YML)
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(docs)
    (root / "engine").mkdir()
    (root / "engine" / "__init__.py").write_text("")
    (root / "engine" / "calc.py").write_text(module)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(tests)
    return root


def dev(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "scripts/dev.py", *args, "-p", "no:cacheprovider"],
        cwd=project,
        # Two tests need no pytest-xdist workers (each would start in about a second).
        env={
            **env,
            "VENV_DIR": sys.prefix,
            "SECRET_KEY": "not-used-by-this-project",
            "TEST_WORKERS": "0",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_checks_pass_then_pytest_runs_with_the_arguments_and_its_exit_code_is_kept(tmp_path):
    result = dev(make_project(tmp_path), "test", "-k", "fails_on_purpose")

    assert "Static checks passed (ruff check" in result.stdout, result.stdout + result.stderr
    assert result.stdout.index("$ ruff check .") < result.stdout.index("$ mypy")
    assert result.stdout.index("$ mypy") < result.stdout.index("$ mkdocs build --strict")
    # -k reached pytest (pytest-xdist's summary leaves the deselected test out).
    assert re.search(r" 1 failed(, 1 deselected)? in ", result.stdout), result.stdout
    assert result.returncode == 1  # pytest's: one test failed


def test_a_failing_check_stops_the_command_before_pytest_and_every_check_reports(tmp_path):
    unused_import_misformatted_and_mistyped = (
        "import os\n\n\ndef double(number: int) -> int:\n    return str(number*2)\n"
    )
    project = make_project(tmp_path, unused_import_misformatted_and_mistyped, MARKING_TESTS)

    result = dev(project, "test")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "F401" in output  # ruff check: `os` imported but unused
    assert "File would be reformatted\n --> engine/calc.py:5" in output  # ruff format --check
    assert "engine/calc.py:5: error: Incompatible return value" in output  # mypy
    assert "Static checks failed: ruff check, ruff format, mypy." in result.stderr
    assert not (project / "suite-ran").exists()


def test_a_broken_anchor_in_the_docs_fails_the_checks_before_pytest(tmp_path):
    broken = DOCS_INDEX.replace("(#usage)", "(#usage-notes)")
    project = make_project(tmp_path, tests=MARKING_TESTS, docs=broken)

    result = dev(project, "test")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "there is no such anchor on this page" in result.stderr  # MkDocs names the link
    assert "Static checks failed: mkdocs." in result.stderr
    assert not (project / "suite-ran").exists()


def test_no_checks_runs_only_the_suite_and_check_runs_only_the_checks(tmp_path):
    project = make_project(tmp_path, "import os\n\n\n" + CLEAN_MODULE, MARKING_TESTS)

    skipped = dev(project, "test", "--no-checks")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "$ ruff" not in skipped.stdout and "1 passed" in skipped.stdout
    (project / "suite-ran").unlink()

    checked = dev(project, "check")
    assert checked.returncode == 1
    assert "F401" in checked.stdout and "Static checks failed: ruff check." in checked.stderr
    assert not (project / "suite-ran").exists()


def test_unit_runs_the_unit_tier_alone(tmp_path):
    project = make_project(tmp_path, tests=MARKING_TESTS)
    (project / "tests" / "unit").mkdir()
    (project / "tests" / "unit" / "test_pure.py").write_text(TESTS.replace("== 5", "== 4"))

    result = dev(project, "test", "--no-checks", "--unit")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert not (project / "suite-ran").exists()  # tests/test_calc.py, outside the tier


def test_ci_runs_the_test_command_with_its_checks_then_postgresql_then_the_container_test():
    ci = (ROOT / ".ci" / "run").read_text()
    runs = [line.strip() for line in ci.splitlines() if "scripts/dev.py test" in line]
    assert runs[0] == "python3 scripts/dev.py test"  # the README's command, checks included
    # The tests that write through the database, again on PostgreSQL, without the checks.
    assert runs[1] == "python3 scripts/dev.py test --no-checks $POSTGRES_TESTS"
    assert "DATABASE_URL=" in ci[: ci.index(runs[1])]
    assert runs[2:] == ["exec python3 scripts/dev.py test --no-checks -m containers"]
