"""``manage.py prepare`` run by a user who cannot write the static files says what to fix.

That was the first Docker image's mistake (static files collected as root at build, again as
the service's user at start). The image itself is built and run for real by
tests/containers/; this checks the message, run as ``nobody`` against static files of root's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays root and nobody: needs root")

ROOT = Path(__file__).resolve().parents[2]
# This machine's Python lives under /root, private to root: the read-search capability lets
# `nobody` read it (and everything else) while what it may write stays exactly nobody's.
AS_NOBODY = [
    "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]  # fmt: skip


def test_prepare_says_what_to_fix_when_the_static_folder_is_not_the_users(tmp_path: Path):
    data_dir, static_root = tmp_path / "data", tmp_path / "static"
    data_dir.mkdir()
    subprocess.run(["chown", "nobody", str(data_dir)], check=True)
    (static_root / "admin").mkdir(parents=True)  # root's, as collected at a build
    env = {
        **os.environ,
        "SECRET_KEY": "prepare-test-key",
        "ADMIN_PASSWORD": "prepare-test-password",
        "DATA_DIR": str(data_dir),
        "STATIC_ROOT": str(static_root),
        "DATABASE_URL": f"sqlite:///{data_dir}/db.sqlite3",
    }
    env.pop("SECRET_KEY_FILE", None)
    done = subprocess.run(
        [*AS_NOBODY, sys.executable, "manage.py", "prepare"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"Cannot write the static files to {static_root}" in done.stderr, done.stderr
