"""The Procfile's `release` line: the one-off step that platforms run before a release starts
(migrate, collect static files, defaults). It prepares a fresh database from which the admin
works with DEBUG=False; the run command never starts it as a process
(tests/integration/test_run_command.py)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from loadtest_project.embedded_redis import free_port
from loadtest_project.procfile import RELEASE, ProcessGroup, read_procfile

from ..support.admin_page import assert_admin_login_served

pytestmark = pytest.mark.integration

RELEASE_TIMEOUT_S = 180.0
# Settings that must come from this test, not from the environment the tests run in.
SET_HERE = ("DATABASE_URL", "REDIS_URL", "DATA_DIR", "STATIC_ROOT", "DEBUG", "SECRET_KEY",
            "ALLOWED_HOSTS", "ADMIN_USERNAME", "ADMIN_PASSWORD")  # fmt: skip


def test_procfile_release_line_runs_prepare():
    assert read_procfile()[RELEASE] == "python manage.py prepare"


def test_release_line_prepares_a_fresh_database_the_admin_works_from(tmp_path, redis_url):
    data_dir = tmp_path / "data"
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in SET_HERE}
    env.update(
        DATA_DIR=str(data_dir),  # SQLite and static files in there, by default
        DEBUG="False",
        SECRET_KEY="release-test-key",
        ADMIN_PASSWORD="release-test-password",
        REDIS_URL=redis_url,
        ALLOWED_HOSTS="127.0.0.1",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    procfile = read_procfile()
    group = ProcessGroup(base_env=env)
    try:
        release_log = tmp_path / "release.log"
        release = group.start(RELEASE, procfile[RELEASE], log_path=release_log)
        assert release.popen.wait(timeout=RELEASE_TIMEOUT_S) == 0, release_log.read_text()
        assert (data_dir / "static" / "staticfiles.json").exists()
        with sqlite3.connect(data_dir / "db.sqlite3") as database:
            (token,) = database.execute("SELECT key FROM authtoken_token").fetchone()
        # Platforms keep a release's output in their logs.
        output = release_log.read_text()
        assert "release-test-password" not in output and token not in output, output

        web_log = tmp_path / "web.log"
        web = group.start("web", procfile["web"], log_path=web_log)
        assert_admin_login_served(f"http://127.0.0.1:{port}", web.running, web_log.read_text)
    finally:
        group.stop_all(grace_s=5)
