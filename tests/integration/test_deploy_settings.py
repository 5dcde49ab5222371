"""Production settings pass `manage.py check --deploy` with no warnings when the documented
environment is set (and do not without it: the check is real)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "False",
    "HTTPS": "True",
    "ALLOWED_HOSTS": "loadtest.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://loadtest.example.com",
}


def deploy_check(tmp_path, **env):
    full_env = {**os.environ, "DATA_DIR": str(tmp_path), **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_documented_production_environment_passes_the_deploy_check(tmp_path):
    result = deploy_check(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_settings_the_deploy_check_warns(tmp_path):
    env = {**PRODUCTION_ENV, "HTTPS": "False", "SECRET_KEY": secrets.token_urlsafe(50)}
    result = deploy_check(tmp_path, **env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS
