"""``manage.py loadtest run`` as a CI runs it: a subprocess against the real workers, whose
exit code says pass (0), fail (1) or bad input (2), and whose JUnit, JSON and CSV parse."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from apps.sessions.models import LoadTestSession

from ..support.cli import ROOT, loadtest, write_config
from ..support.sessions import make_target
from ..support.waiting import assert_stays

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_passing_run_exits_0_and_writes_junit_json_and_csv(
    api, workers, counting_server, forget_redis_sessions, tmp_path
):
    make_target(api, counting_server)
    config = write_config(
        tmp_path, counting_server.base_url, thresholds=["p95_ms < 60000", "ping: error_rate < 0.5"]
    )
    out = {name: tmp_path / name for name in ("out.json", "out.csv", "out.xml")}
    result = loadtest(
        workers, "run", "--config", str(config), "--threshold", "requests > 10",
        "--export", str(out["out.json"]), "--export", str(out["out.csv"]),
        "--junit", str(out["out.xml"]), "--progress-interval", "1",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: PASS, all 3 thresholds passed (exit 0)." in result.stdout
    assert "requests " in result.stdout.splitlines()[1]  # a progress line
    assert "PASS  ping: error_rate < 0.5" in result.stdout
    session = LoadTestSession.objects.get()
    assert session.status == "completed"
    assert session.total_requests == counting_server.total > 10

    document = json.loads(out["out.json"].read_text())
    assert document["session"]["id"] == session.pk
    assert [r["passed"] for r in document["session"]["threshold_results"]] == [True] * 3
    (row,) = list(csv.DictReader(out["out.csv"].open()))
    assert row["endpoint"] == "ping" and int(row["requests"]) == counting_server.count("/ping")
    suite = ET.parse(out["out.xml"]).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "p95_ms < 60000",
        "ping: error_rate < 0.5",
        "requests > 10",
    ]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    assert not list(suite.iter("failure"))


def test_a_failing_threshold_exits_1_with_the_failure_in_junit(
    api, workers, counting_server, forget_redis_sessions, tmp_path
):
    make_target(api, counting_server)
    config = write_config(tmp_path, counting_server.base_url, thresholds=["p95_ms < 60000"])
    junit = tmp_path / "junit.xml"
    result = loadtest(
        workers, "run", "--config", str(config), "--threshold", "requests > 1e9",
        "--junit", str(junit), "--quiet",
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""  # --quiet
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    (failure,) = list(suite.iter("failure"))
    # The observed figure carries its unit: "observed 123 requests", never a bare number.
    assert re.fullmatch(
        r"requests > 1000000000: observed [0-9,]+ requests", failure.get("message")
    ), failure.get("message")


def test_bad_input_exits_2_naming_the_field_and_line(
    api, workers, counting_server, forget_redis_sessions, tmp_path
):
    make_target(api, counting_server)
    config = write_config(tmp_path, counting_server.base_url, concurrent_users=0)
    result = loadtest(workers, "run", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:4: concurrent_users: At least 1 virtual user" in result.stderr

    result = loadtest(workers, "run", "--config", str(config), "--target", "http://example.com")
    assert result.returncode == 2
    assert "--target: target: Host 'example.com:80' is not on the allow-list" in result.stderr

    result = loadtest(workers, "run", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read it" in result.stderr
    assert not LoadTestSession.objects.exists()  # nothing was stored, no load was sent
    assert counting_server.total == 0


def test_sigterm_stops_the_session_and_exits_2(
    api, workers, counting_server, forget_redis_sessions, tmp_path
):
    """A cancelled CI job: the load stops with the command, and the run did not pass."""
    make_target(api, counting_server)
    config = write_config(tmp_path, counting_server.base_url, duration_minutes=5)
    env = {**os.environ, **workers.env, "LOG_LEVEL": "WARNING"}
    junit = tmp_path / "junit.xml"
    command = [sys.executable, "manage.py", "loadtest", "run", "--config", str(config),
               "--progress-interval", "0.5", "--junit", str(junit)]  # fmt: skip
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        for line in process.stdout:
            if line.startswith("running") and "requests 0 " not in line:
                break
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 2, stdout + stderr
    assert "interrupted; stopping the session" in stderr
    session = LoadTestSession.objects.get()
    assert (session.status, session.end_reason) == ("stopped", "stopped_by_user")
    # Created, started and stopped from the command line, by nobody in particular (no --user).
    vias = dict(session.events.values_list("kind", "via"))
    assert {vias[kind] for kind in ("created", "started", "stop_requested", "ended")} == {"cli"}
    sent = counting_server.total
    assert sent > 0
    assert_stays(lambda: counting_server.total == sent, 1.0, "No load after the command ended")
    assert ET.parse(junit).getroot().find("testsuite").find("testcase/error") is not None


def test_a_user_without_the_operator_role_is_refused(api, workers, viewer, counting_server,
                                                     tmp_path):  # fmt: skip
    make_target(api, counting_server)
    config = write_config(tmp_path, counting_server.base_url)
    result = loadtest(workers, "run", "--config", str(config), "--user", viewer.username)
    assert result.returncode == 2
    assert "Your role does not allow you to create sessions" in result.stderr
    result = loadtest(workers, "run", "--config", str(config), "--user", "nobody")
    assert result.returncode == 2 and "--user: no active user 'nobody'." in result.stderr
    assert not LoadTestSession.objects.exists()


def test_abort_on_fail_stops_the_run_early_and_exits_1(
    api, workers, counting_server, forget_redis_sessions, tmp_path
):
    make_target(api, counting_server)
    config = write_config(tmp_path, counting_server.base_url, duration_minutes=5)
    result = loadtest(workers, "run", "--config", str(config), "--threshold", "requests < 30",
                      "--abort-on-fail", timeout_s=90)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  requests < 30 abort" in result.stdout
    assert "(stopped the session)" in result.stdout
    session = LoadTestSession.objects.get()
    assert session.end_reason == "threshold_failed"
    assert session.duration_s() < 30  # not its 5 minutes
