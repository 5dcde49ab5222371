"""enable_logging keeps a per-session request log: sampled by the shards, bounded by the
monitor, readable through the API and downloadable; without it, nothing is kept.

The worker processes are the Procfile's (see conftest), with REQUEST_LOG_KEPT=30.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from apps.sessions.models import LoadTestSession, RequestLogEntry, Target
from apps.sessions.results.records import record_request_log
from apps.workers.control import SessionKeys

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import assert_stays, wait_until
from ..support.workers import WORKER_ENV

KEPT = int(WORKER_ENV["REQUEST_LOG_KEPT"])
ENDPOINTS = (("ok", "/ok?token=do-not-show-me", 1.0), ("broken", "/broken", 1.0))
SAMPLES_PER_FLUSH = 3
FLUSHES_PER_S = 1 / float(WORKER_ENV["STATS_FLUSH_INTERVAL_S"])

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _request_log(client, session_id: int) -> list[dict]:
    response = client.get(f"/api/sessions/{session_id}/requests/", {"page_size": 1000})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_logged_session_keeps_a_bounded_sample_of_its_requests(
    workers, api, viewer_api, counting_server, forget_redis_sessions
):
    counting_server.statuses["/broken"] = 500
    session_id = start_load(api, counting_server, ENDPOINTS, concurrent_users=4,
                            duration_minutes=0, max_errors_per_minute=0, enable_logging=True,
                            **BRISK)  # fmt: skip
    try:
        full = wait_until(lambda: (log := _request_log(viewer_api, session_id)) and
                          len(log) == KEPT and log, timeout_s=30)  # fmt: skip
        # The log stays at its bound while newer requests replace the oldest.
        newer = wait_until(lambda: (log := _request_log(viewer_api, session_id))[0]["at"] >
                           full[0]["at"] and log, timeout_s=10)  # fmt: skip
        assert len(newer) == KEPT
        assert newer[-1]["at"] > full[-1]["at"]
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    session = LoadTestSession.objects.get(pk=session_id)
    entries = _request_log(viewer_api, session_id)
    assert len(entries) == KEPT == RequestLogEntry.objects.filter(session=session).count()
    assert [entry["at"] for entry in entries] == sorted((e["at"] for e in entries), reverse=True)
    by_endpoint = {entry["endpoint"]: entry for entry in entries}
    assert by_endpoint.keys() == {"ok", "broken"}
    ok, broken = by_endpoint["ok"], by_endpoint["broken"]
    assert (ok["method"], ok["path"], ok["status"], ok["failure_class"]) == ("GET", "/ok", 200, "")
    assert (broken["path"], broken["status"], broken["failure_class"]) == (
        "/broken", 500, "http_5xx"
    )  # fmt: skip
    assert all(entry["latency_ms"] > 0 for entry in entries)
    load_workers = {name for name in workers.hostnames if not name.startswith("control")}
    assert {entry["hostname"] for entry in entries} <= load_workers
    # Sampled, not every request: at most a few per endpoint and flush.
    per_second = Counter((e["endpoint"], e["at"][:19]) for e in entries)
    assert max(per_second.values()) <= SAMPLES_PER_FLUSH * (FLUSHES_PER_S + 1)
    assert session.total_requests > 3 * KEPT

    url = f"/api/sessions/{session_id}/export/"
    download = viewer_api.get(url, {"format": "csv", "table": "requests"})
    assert download.status_code == 200
    assert download["Content-Disposition"].endswith(f'session-{session_id}-requests.csv"')
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert len(rows) == KEPT
    assert list(rows[0]) == ["at", "endpoint", "method", "path", "status", "failure_class",
                             "latency_ms", "hostname", "trace_id"]  # fmt: skip
    assert rows[0]["at"] <= rows[-1]["at"]  # a download reads oldest first
    document = viewer_api.get(url, {"format": "json"}).json()
    assert len(document["requests"]) == KEPT
    request_log = download.content.decode() + str(document["requests"]) + str(entries)
    assert "do-not-show-me" not in request_log  # query strings never reach the log

    assert APIClient().get(f"/api/sessions/{session_id}/requests/").status_code in (401, 403)


def test_a_session_without_logging_keeps_no_request_log(
    workers, api, viewer_api, redis_client, counting_server, forget_redis_sessions
):
    session_id = start_load(api, counting_server, ENDPOINTS, concurrent_users=4,
                            duration_minutes=0, enable_logging=False, **BRISK)  # fmt: skip
    try:
        wait_until(lambda: LoadTestSession.objects.get(pk=session_id).total_requests > 50,
                   timeout_s=30)  # fmt: skip
        # Through a few more flushes and monitor passes.
        assert_stays(lambda: redis_client.llen(SessionKeys(session_id).requests) == 0, 1.0,
                     "No request logged")  # fmt: skip
    finally:
        api.post(f"/api/sessions/{session_id}/stop/")
        wait_for_status(session_id)
    assert _request_log(viewer_api, session_id) == []
    assert not RequestLogEntry.objects.filter(session_id=session_id).exists()
    download = viewer_api.get(f"/api/sessions/{session_id}/export/",
                              {"format": "csv", "table": "requests"})  # fmt: skip
    assert download.status_code == 200 and download.content.strip() == b""


@pytest.mark.django_db
def test_the_log_keeps_the_newest_and_fits_long_paths_to_their_column(settings):
    settings.REQUEST_LOG_KEPT = 5
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:1")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    long_path = "/" + "p" * 900
    samples = [
        {"at": 1_700_000_000 + n, "endpoint": "e", "method": "GET", "path": long_path,
         "status": 200, "failure_class": "", "latency_ms": 1.25, "hostname": "h"}
        for n in range(8)
    ]  # fmt: skip
    record_request_log(session.pk, samples[:4])
    record_request_log(session.pk, samples[4:])
    kept = list(RequestLogEntry.objects.filter(session=session).order_by("at"))
    assert [entry.at for entry in kept] == [
        datetime.fromtimestamp(1_700_000_000 + n, tz=UTC) for n in range(3, 8)
    ]
    assert len(kept[0].path) == 500
