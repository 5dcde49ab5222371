"""Authorization, cookies, tokens and passwords never reach a log line; log files rotate."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from loadtest_project.logfilters import RedactSecrets, redact

ROOT = Path(__file__).resolve().parent.parent


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


def test_log_file_is_written_redacted_and_rotating(tmp_path):
    log_file = tmp_path / "service.log"
    script = (
        "import django, logging, logging.handlers; django.setup();"
        "logging.getLogger('apps').warning('Authorization: Token feedfacefeedfacefeedface');"
        "handler = [h for h in logging.getLogger().handlers"
        " if isinstance(h, logging.handlers.RotatingFileHandler)][0];"
        "print(handler.maxBytes, handler.backupCount)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "loadtest_project.settings",
           "LOG_FILE": str(log_file), "DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10485760", "5"]
    written = log_file.read_text()
    assert "[redacted]" in written and "feedface" not in written
    assert "feedface" not in result.stderr  # the console handler too


def test_log_level_comes_from_the_environment():
    assert logging.getLogger().level == logging.getLevelName(django_settings.LOG_LEVEL)
