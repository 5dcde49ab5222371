"""Authorization, cookies, tokens and passwords never reach a log line; LOG_FILE survives
logrotate."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from loadtest_project.logfilters import RedactSecrets, redact

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b091"),
        ("headers={'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc'}", "eyJhbGci"),
        ('{"Cookie": "sessionid=abcdef0123456789; csrftoken=zzzzzzzzzzzz"}', "abcdef0123"),
        ("login failed password=hunter2-longer for ada", "hunter2"),
        ('{"username": "ada", "password": "correct horse"}', "correct"),
        ("connecting to postgres://loadtest:s3cretpw@db:5432/loadtest", "s3cretpw"),
        ("X-Api-Key: AKIA1234567890ABCDEF", "AKIA1234"),
        ("token=0123456789abcdef0123", "0123456789abcdef"),
    ],
)
def test_secrets_are_redacted(line, secret):
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_ordinary_lines_are_untouched():
    line = "Session 4 started by olivia: 10 users (closed model)."
    assert redact(line) == line


def test_every_configured_handler_redacts():
    ours = set(django_settings.LOGGING["handlers"])
    handlers = [
        handler
        for handler in logging.getLogger().handlers + logging.getLogger("django").handlers
        if handler.name in ours  # not the ones pytest adds for its own capture
    ]
    assert handlers
    for handler in handlers:
        assert any(isinstance(f, RedactSecrets) for f in handler.filters), handler


def test_redaction_applies_to_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling with %s", None, None)
    record.args = ("Authorization: Token abcdefabcdefabcdef",)
    try:
        raise ValueError("password=swordfish123")
    except ValueError:
        record.exc_info = sys.exc_info()
    RedactSecrets().filter(record)
    assert "abcdefabcdef" not in record.getMessage()
    assert "swordfish" not in record.exc_text


@pytest.mark.django_db
def test_a_bad_token_does_not_end_up_in_the_logs(caplog):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000secret0000000000000000000000000")
    with caplog.at_level(logging.DEBUG):
        assert client.get("/api/sessions/").status_code == 401
    assert "secret" not in caplog.text


def test_log_file_is_written_redacted_and_reopened_after_rotation(tmp_path):
    """LOG_FILE is shared by every process, so none rotates it: logrotate moves it away and
    each process reopens the path at its next line."""
    log_file = tmp_path / "logs" / "service.log"  # its folder is created if missing
    script = (
        "import django, logging, os, sys; django.setup();"
        "log = logging.getLogger('apps');"
        "log.warning('Authorization: Token feedfacefeedfacefeedface');"
        "os.rename(sys.argv[1], sys.argv[1] + '.1');"  # what logrotate does
        "log.warning('after the rotation')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "loadtest_project.settings",
           "LOG_FILE": str(log_file), "DATA_DIR": str(tmp_path / "data"),
           "LOG_PROCESS_NAME": "rotation-test"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script, str(log_file)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rotated = Path(f"{log_file}.1").read_text()
    assert "[redacted]" in rotated and "feedface" not in rotated
    assert "feedface" not in result.stderr  # the console handler too
    reopened = log_file.read_text()
    assert "after the rotation" in reopened and "after the rotation" not in rotated
    # Each line names the process that wrote it, and its pid.
    assert re.search(r"WARNING \[rotation-test \d+\] apps: after the rotation", reopened)


def test_log_level_comes_from_the_environment():
    assert logging.getLogger().level == logging.getLevelName(django_settings.LOG_LEVEL)
