"""Every process logs through the project's LOGGING: redacted, into LOG_FILE, named.

Celery configures logging itself unless told otherwise; these tests read what the real
worker, control and beat processes (the Procfile's lines, started by the ``workers``
fixture with LOG_FILE set) and the Procfile's web line wrote, as an operator would.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import requests

from apps.sessions.models import Endpoint, Target
from loadtest_project.embedded_redis import free_port
from loadtest_project.logfilters import TicksAtDebug
from loadtest_project.procfile import ProcessGroup, read_procfile

from ..support.sessions import BRISK, create_session, wait_for_status
from ..support.waiting import assert_stays, wait_until
from ..support.workers import database_url_for_workers

TOKEN = "abcdefgh12345678"
SECRET_NAME = f"Authorization: Bearer {TOKEN}"
ENGINE_ERROR = "error in the load engine"


def _line_written_by(text: str, process_name: str) -> bool:
    """Lines look like ``2025-01-01 12:00:00,000 INFO [control-test 4242] celery...``."""
    return re.search(rf"\[{re.escape(process_name)} \d+\] ", text) is not None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_redacts_what_it_logs(workers, api, counting_server, forget_redis_sessions):
    # An endpoint whose request cannot be built: every pick is an engine error, which the
    # load worker logs with the endpoint's name (its secret-looking part must not survive).
    target = Target.objects.create(name="secret-names", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name=SECRET_NAME, url="/x", method="B@D")
    session_id = create_session(api, target.pk, concurrent_users=1, duration_minutes=0,
                                max_errors_per_minute=0, **BRISK)  # fmt: skip
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    # Whichever load worker took the shard (earlier tests may have added some).
    names = [hostname.split("@")[0] for hostname in workers.hostnames if "control" not in hostname]

    def console_with_the_error():
        return next(((name, text) for name in names
                     if ENGINE_ERROR in (text := workers.log(name))), None)  # fmt: skip

    try:
        name, console = wait_until(console_with_the_error, timeout_s=30)
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    engine_lines = [line for line in console.splitlines() if ENGINE_ERROR in line]
    assert engine_lines and all("[redacted]" in line for line in engine_lines), engine_lines
    assert all(TOKEN not in workers.log(other) for other in names)
    shared = wait_until(lambda: (text := workers.log_file()) and ENGINE_ERROR in text and text,
                        timeout_s=10)  # fmt: skip
    assert TOKEN not in shared
    assert any(_line_written_by(line, name) for line in shared.splitlines()
               if ENGINE_ERROR in line)  # fmt: skip


@pytest.mark.integration
def test_worker_control_and_beat_all_write_to_log_file(workers):
    def every_process_wrote():
        text = workers.log_file()
        return all(_line_written_by(text, name) for name in ("load-test-1", "control-test",
                                                                  "beat"))  # fmt: skip

    wait_until(every_process_wrote, timeout_s=20)
    text = workers.log_file()
    assert "beat: Starting..." in text  # beat's start-up lines stay at INFO
    assert re.search(r"load-test-1@\S+ ready\.", text)


@pytest.mark.integration
def test_beat_does_not_log_every_tick_at_info(workers):
    beat_log = Path(workers.log_dir / "beat.log")
    assert "beat: Starting..." in beat_log.read_text()
    written_before = beat_log.stat().st_size
    (beat,) = [process for process in workers.group.processes if process.name == "beat"]

    def written_since() -> str:
        with beat_log.open(errors="replace") as log:
            log.seek(written_before)
            return log.read()

    # Ten ticks of MONITOR_INTERVAL_S=0.5, none of them logged.
    assert_stays(lambda: "Sending due task" not in written_since(), 5.0, "Beat's ticks unlogged")
    assert beat.running()
    assert "Sending due task" not in workers.log_file()


def test_ticks_are_demoted_to_debug_not_lost():
    """At DEBUG the tick lines are still there, labelled DEBUG."""
    logger = logging.getLogger("test.ticks")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1,
                               "Scheduler: Sending due task %s (%s)", ("a", "b"), None)  # fmt: skip
    tick_filter = TicksAtDebug()
    logger.setLevel(logging.INFO)
    assert tick_filter.filter(record) is False
    other = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "beat: Starting...", (),
                              None)  # fmt: skip
    assert tick_filter.filter(other) is True and other.levelno == logging.INFO
    logger.setLevel(logging.DEBUG)
    assert tick_filter.filter(record) is True
    assert (record.levelno, record.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_web_process_logs_to_the_same_file_redacted(tmp_path, django_db_blocker, redis_url):
    """uvicorn's own lines and Django's go through the same handlers as everything else."""
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    port = free_port()
    log_file = tmp_path / "service.log"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FILE": str(log_file),
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    group = ProcessGroup()
    group.start("web", read_procfile()["web"], env=env, log_path=tmp_path / "web.log")
    try:

        def answer_status():
            try:
                return requests.get(
                    f"http://127.0.0.1:{port}/api/sessions/",
                    timeout=2,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ).status_code
            except requests.ConnectionError:
                return None

        assert wait_until(answer_status, timeout_s=30) == 401
        wait_until(lambda: "Unauthorized" in log_file.read_text(), timeout_s=10)
    finally:
        group.stop_all(grace_s=10)
    written = log_file.read_text()
    assert _line_written_by(written, "web")
    assert "Uvicorn running on" in written  # uvicorn's own logger, not only Django's
    assert "uvicorn.access" not in written  # the Procfile's --no-access-log still holds
    assert TOKEN not in written + (tmp_path / "web.log").read_text()
