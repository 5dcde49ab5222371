"""The admin password `manage.py prepare` shows is the one that signs in to the database in
use: switching DATABASE_URL (and back) never shows another database's password."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.hashers import check_password

ROOT = Path(__file__).resolve().parents[2]
NOT_INHERITED = ("DATABASE_URL", "ADMIN_USERNAME", "ADMIN_PASSWORD", "DJANGO_SETTINGS_MODULE")


# What the run command does before its banner: prepare, and show the password it returns
# (``manage.py prepare`` itself prints no secret: its output may end in a platform's logs).
PREPARE_AND_SHOW = (
    "import django; django.setup(); "
    "from apps.ops.management.commands.prepare import prepare_service; "
    "print(prepare_service()[1])"
)


def prepare(data_dir: Path, database: Path) -> str:
    """Prepare the SQLite file ``database`` as the run command does; the password shown."""
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    # DEBUG: plain static storage, a quicker collectstatic; the key comes from SECRET_KEY_FILE.
    env.update(
        DJANGO_SETTINGS_MODULE="loadtest_project.settings",
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{database}",
        DEBUG="True",
    )
    result = subprocess.run(
        [sys.executable, "-c", PREPARE_AND_SHOW],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def signs_in(database: Path, password: str) -> bool:
    with sqlite3.connect(database) as connection:
        (encoded,) = connection.execute(
            "SELECT password FROM auth_user WHERE username = 'admin'"
        ).fetchone()
    return check_password(password, encoded)


def test_each_database_shows_its_own_admin_password(tmp_path):
    data_dir = tmp_path / "data"
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"

    first_password = prepare(data_dir, first)
    second_password = prepare(data_dir, second)
    assert first_password != second_password
    assert signs_in(first, first_password)
    assert signs_in(second, second_password)

    # Back to the first database: its own password again, not the last one generated.
    assert prepare(data_dir, first) == first_password
    saved = sorted(path.name for path in data_dir.glob("admin_password*"))
    assert len(saved) == 2 and all(re.fullmatch(r"admin_password\.\w{16}", n) for n in saved)


def test_a_password_saved_by_an_older_version_is_kept_only_if_it_signs_in(tmp_path):
    data_dir, database = tmp_path / "data", tmp_path / "db.sqlite3"
    password = prepare(data_dir, database)
    (saved,) = data_dir.glob("admin_password.*")
    saved.rename(data_dir / "admin_password")  # where versions before this one kept it

    assert prepare(data_dir, database) == password
    assert saved.read_text() == password  # adopted for this database

    saved.write_text("changed-in-the-admin-since")
    (data_dir / "admin_password").unlink()
    shown = prepare(data_dir, database)  # never a password that does not sign in
    assert shown == "(not saved for this database; set ADMIN_PASSWORD to reset it)"
