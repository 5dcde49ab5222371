"""SECRET_KEY: never made up per process. Without DEBUG a missing key stops every command with
instructions; the README's commands still need nothing set, because scripts/dev.py keeps one
key in the data folder and hands it to everything it runs; compose refuses to start without it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KEY_VARIABLES = ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "DJANGO_SETTINGS_MODULE")


def environment_without_a_key(tmp_path: Path, **env: str) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if name not in KEY_VARIABLES}
    return {**inherited, "DATA_DIR": str(tmp_path / "data"), **env}


def manage_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environment_without_a_key(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_debug_a_missing_secret_key_stops_the_command_with_instructions(tmp_path):
    result = manage_check(tmp_path, DEBUG="False")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make one
    assert not (tmp_path / "data" / "secret_key").exists()  # nothing generated in silence


def test_a_key_file_named_by_secret_key_file_is_used(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("a-long-random-key-" * 4)
    assert manage_check(tmp_path, SECRET_KEY_FILE=str(key_file)).returncode == 0

    missing = manage_check(tmp_path, SECRET_KEY_FILE=str(tmp_path / "nowhere"))
    assert missing.returncode != 0
    assert "SECRET_KEY_FILE=" in missing.stderr and "cannot be read" in missing.stderr


def test_debug_keeps_a_local_key_in_the_data_folder(tmp_path):
    assert manage_check(tmp_path, DEBUG="True").returncode == 0
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_dev_script_makes_one_key_and_hands_it_to_what_it_runs(tmp_path):
    """``scripts/dev.py test`` with nothing set: pytest (which loads the settings without
    DEBUG) starts, and the key file is created once, readable by its owner only."""
    env = environment_without_a_key(tmp_path, VENV_DIR=sys.prefix, TEST_WORKERS="0")
    command = [sys.executable, "scripts/dev.py", "test", "--no-checks", "--collect-only", "-q",
               "-p", "no:cacheprovider", "tests/unit/test_histogram.py"]  # fmt: skip
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "collected" in first.stdout
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert len(key) >= 50

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert key_file.read_text() == key


def test_compose_passes_the_key_from_env_and_refuses_to_start_without_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secret_key = compose["x-app"]["environment"]["SECRET_KEY"]
    assert secret_key.startswith("${SECRET_KEY:?") and "SECRET_KEY" in secret_key[14:]
