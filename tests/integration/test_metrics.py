"""GET /metrics: Prometheus' exposition of the sessions, exact against a real run, guarded by
a token and/or an address list, with a lockout on wrong tokens."""

import ipaddress
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from apps.sessions.integrations.prometheus import LATENCY_BUCKETS_S
from apps.sessions.models import AuditEntry, EndpointStats, Target
from apps.workers.histogram import bucket_index

from ..support.metrics import GUARDED, TOKEN, families, samples, scrape, stored_session, value
from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

# --- a real run ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@override_settings(**GUARDED)
def test_metrics_of_a_real_run_equal_the_sessions_totals_and_the_targets_count(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.statuses["/boom"] = 500
    session_id = start_load(
        api,
        counting_server,
        [("ping", "/ping", 3.0), ("boom", "/boom", 1.0)],
        concurrent_users=4,
        duration_minutes="0.06",  # 3.6 s
        max_errors_per_minute=0,  # the 500s must not stop it early
        **BRISK,
    )
    session = str(session_id)

    # While it runs: live users and workers from the heartbeats, counters that only grow.
    def running_scrape():
        parsed = families(scrape())
        users = samples(parsed, "loadtest_users", session_id=session)
        counted = samples(parsed, "loadtest_requests_total", session_id=session, endpoint="ping")
        return parsed if users and users[0].value > 0 and counted else None

    live = wait_until(running_scrape, timeout_s=20, what="users on /metrics")
    assert value(live, "loadtest_users", session_id=session) == 4
    assert value(live, "loadtest_configured_users", session_id=session) == 4
    assert value(live, "loadtest_session_active", session_id=session) == 1
    assert value(live, "loadtest_workers") >= 1
    assert value(live, "loadtest_engine_up") == 1
    first = value(live, "loadtest_requests_total", session_id=session, endpoint="ping")
    wait_until(
        lambda: value(families(scrape()), "loadtest_requests_total", session_id=session,
                      endpoint="ping") > first,
        timeout_s=10,
    )  # fmt: skip

    finished = wait_for_status(session_id, timeout_s=40)
    assert finished.status == "completed", finished.end_detail
    parsed = families(scrape())

    requests = {
        name: value(parsed, "loadtest_requests_total", session_id=session, endpoint=name)
        for name in ("ping", "boom")
    }
    assert requests["ping"] == counting_server.count("/ping") > 20
    assert requests["boom"] == counting_server.count("/boom") > 5
    assert sum(requests.values()) == finished.total_requests == counting_server.total
    failures = {
        (sample.labels["endpoint"], sample.labels["failure_class"]): sample.value
        for sample in samples(parsed, "loadtest_failures_total", session_id=session)
    }
    assert sum(failures.values()) == finished.total_failures
    stored = {row.name: row for row in EndpointStats.objects.filter(session_id=session_id)}
    for (endpoint, failure_class), count in failures.items():
        assert count == stored[endpoint].failures_by_class.get(failure_class, 0)
    # Every 500 was counted as http_5xx, but those in flight at the stop: cut, no failures.
    cut = {
        name: value(parsed, "loadtest_requests_cut_by_stop_total", session_id=session,
                    endpoint=name)
        for name in ("ping", "boom")
    }  # fmt: skip
    for name in ("ping", "boom"):
        assert cut[name] == stored[name].cut_by_stop
        unreached = value(
            parsed, "loadtest_requests_unreached_total", session_id=session, endpoint=name
        )
        assert unreached == stored[name].unreached == 0
    assert failures[("boom", "http_5xx")] == requests["boom"] - cut["boom"]
    assert sum(count for (endpoint, _), count in failures.items() if endpoint == "ping") == 0

    for name in ("ping", "boom"):
        labels = {"session_id": session, "endpoint": name}
        buckets = samples(parsed, "loadtest_request_duration_seconds_bucket", **labels)
        assert [sample.labels["le"] for sample in buckets][-1] == "+Inf"
        assert len(buckets) == len(LATENCY_BUCKETS_S) + 1
        counts = [sample.value for sample in buckets]
        assert counts == sorted(counts), "buckets must be cumulative"
        measured = requests[name] - cut[name]
        assert value(parsed, "loadtest_request_duration_seconds_count", **labels) == measured
        assert counts[-1] == measured
        mean_s = value(parsed, "loadtest_request_duration_seconds_sum", **labels) / measured
        assert mean_s == pytest.approx(stored[name].mean_ms / 1000, rel=1e-6)
        # A local server answers within a second.
        assert value(parsed, "loadtest_request_duration_seconds_bucket", le="1.0", **labels) == (
            measured
        )
    assert value(parsed, "loadtest_session_active", session_id=session) == 0
    assert value(parsed, "loadtest_users", session_id=session) == 0
    (info,) = samples(parsed, "loadtest_session_info", session_id=session)
    assert info.labels["status"] == "completed"
    assert info.labels["pacing"] == "closed"
    assert info.labels["target"] == Target.objects.get(sessions=session_id).name


# --- what a scrape reports, from rows in the database ----------------------------------------


@pytest.mark.django_db
@override_settings(**GUARDED)
def test_hostile_names_come_back_exactly_through_the_parser():
    hostile_session = 'q"uote \\back\nnew line ✓ {le="1"} \U0001f525'
    hostile_endpoint = 'ep"} loadtest_requests_total 1e9\n# HELP x'
    session = stored_session(
        name=hostile_session,
        endpoint=hostile_endpoint,
        requests=3,
        failures_by_class={"http_4xx": 1},
        histogram={str(bucket_index(3_000)): 3},
        mean_ms=3.0,
    )

    parsed = families(scrape())

    (requests,) = samples(parsed, "loadtest_requests_total", session_id=str(session.pk))
    assert requests.labels["session_name"] == hostile_session
    assert requests.labels["endpoint"] == hostile_endpoint
    assert requests.value == 3
    assert len(samples(parsed, "loadtest_requests_total")) == 1  # nothing injected
    labels = {"session_id": str(session.pk), "endpoint": hostile_endpoint}
    assert value(parsed, "loadtest_failures_total", failure_class="http_4xx", **labels) == 1
    assert value(parsed, "loadtest_failures_total", failure_class="timeout", **labels) == 0
    assert value(parsed, "loadtest_request_duration_seconds_bucket", le="0.0025", **labels) == 0
    assert value(parsed, "loadtest_request_duration_seconds_bucket", le="0.005", **labels) == 3
    assert value(parsed, "loadtest_request_duration_seconds_sum", **labels) == pytest.approx(0.009)


@pytest.mark.django_db
@override_settings(**GUARDED, METRICS_FINISHED_WINDOW_S=600, METRICS_MAX_SESSIONS=3)
def test_a_scrape_reports_active_then_recent_sessions_capped_in_a_fixed_number_of_queries(
    django_assert_max_num_queries,
):
    old = stored_session(name="old", status="completed", ended_ago_s=601)
    recent = [stored_session(name=f"recent-{n}", status="completed", ended_ago_s=60)
              for n in range(3)]  # fmt: skip
    running = [stored_session(name=f"running-{n}", status="running") for n in range(2)]

    with django_assert_max_num_queries(2):
        parsed = families(scrape())

    info = samples(parsed, "loadtest_session_info")
    reported = {sample.labels["session_name"] for sample in info}
    # Both running sessions, then the newest finished one; never the one past the window.
    assert reported == {"running-0", "running-1", "recent-2"}
    assert old.pk and recent
    assert value(parsed, "loadtest_session_active", session_id=str(running[0].pk)) == 1


@pytest.mark.django_db
@override_settings(**GUARDED)
def test_openmetrics_is_served_to_a_scraper_that_asks_for_it():
    stored_session(requests=1, histogram={"5": 1}, mean_ms=0.005)
    response = scrape(HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    plain = scrape()
    assert plain["Content-Type"].startswith("text/plain; version=0.0.4")


# --- the guard ------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_ADDRESSES=())
def test_metrics_are_off_until_a_token_or_an_address_list_is_set():
    response = scrape()
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.text


@pytest.mark.django_db
@override_settings(**GUARDED)
def test_token_missing_or_wrong_is_401_and_right_is_200():
    for response in (scrape(token=None), scrape(token="wrong-token"),
                     scrape(token=None, HTTP_AUTHORIZATION=f"Basic {TOKEN}")):  # fmt: skip
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert scrape(token=None, HTTP_AUTHORIZATION=f"bearer   {TOKEN}  ").status_code == 200
    assert scrape().status_code == 200
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


@pytest.mark.django_db
@override_settings(**GUARDED)
@pytest.mark.parametrize(
    "hostile",
    ["x" * 1_000_000, "ünïcödé-\u202e-token", "\x00\x01", f"{TOKEN}\n{TOKEN}", TOKEN[:-1], "nan"],
)
def test_hostile_tokens_are_refused_cleanly(hostile):
    response = scrape(address="192.0.2.77", token=hostile)
    assert response.status_code in (401, 429)
    assert TOKEN not in response.text


@pytest.mark.django_db
@override_settings(
    METRICS_TOKEN="",
    METRICS_ALLOWED_ADDRESSES=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1")),
)
def test_allowed_addresses_pass_and_others_are_403_forwarded_header_or_not():
    assert scrape(address="10.1.2.3", token=None).status_code == 200
    assert scrape(address="::1", token=None).status_code == 200
    refused = scrape(address="192.0.2.1", token=None)
    assert refused.status_code == 403
    assert "192.0.2.1" in refused.text
    # Without a trusted proxy, X-Forwarded-For is the client's own claim: ignored.
    spoofed = scrape(address="192.0.2.1", token=None, HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert spoofed.status_code == 403
    with override_settings(NUM_PROXIES=1):
        proxied = scrape(address="192.0.2.1", token=None, HTTP_X_FORWARDED_FOR="10.0.0.9")
        assert proxied.status_code == 200
        outside = scrape(address="10.0.0.1", token=None, HTTP_X_FORWARDED_FOR="192.0.2.9")
        assert outside.status_code == 403


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=TOKEN,
                   METRICS_ALLOWED_ADDRESSES=(ipaddress.ip_network("10.0.0.0/8"),))  # fmt: skip
def test_with_both_set_a_scrape_needs_both():
    assert scrape(address="10.0.0.5").status_code == 200
    assert scrape(address="10.0.0.5", token="wrong").status_code == 401
    assert scrape(address="192.0.2.5").status_code == 403


@pytest.mark.django_db
@override_settings(**GUARDED, LOGIN_FAILURE_LIMIT=3, LOGIN_LOCKOUT_MINUTES=1)
def test_wrong_tokens_lock_the_address_out_even_for_the_right_token(caplog):
    address = "198.51.100.23"
    with caplog.at_level(logging.INFO):
        # No token at all guesses nothing: not counted.
        for _ in range(5):
            assert scrape(address=address, token=None).status_code == 401
        assert scrape(address=address, token="guess-1").status_code == 401
        assert scrape(address=address, token="guess-2").status_code == 401
        locked = scrape(address=address, token="guess-3")
        assert locked.status_code == 429
        assert int(locked["Retry-After"]) == 60
        assert scrape(address=address).status_code == 429  # the right token, too
        assert scrape(address=address, token=None).status_code == 429
        assert scrape(address="198.51.100.24").status_code == 200  # other addresses are not
    (entry,) = AuditEntry.objects.filter(action__startswith="metrics locked out")
    assert entry.remote_addr == address
    assert entry.status_code == 429
    assert any("locked out" in record.getMessage() for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "guess-" not in logged
    assert TOKEN not in logged


# --- the run command's token ----------------------------------------------------------------------


def test_the_run_command_generates_a_token_once_unless_a_guard_is_chosen(settings, tmp_path):
    from apps.ops.management.commands.prepare import metrics_token_file

    settings.DATA_DIR = tmp_path
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES = "", ()
    path = metrics_token_file()
    assert path == tmp_path / "metrics_token"
    token = path.read_text()
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert metrics_token_file() == path and path.read_text() == token  # kept
    settings.METRICS_TOKEN = TOKEN
    assert metrics_token_file() is None
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = (ipaddress.ip_network("10.0.0.0/8"),)
    assert metrics_token_file() is None


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        (
            "METRICS_ALLOWED_ADDRESSES",
            "10.0.0.0/8,intranet",
            "METRICS_ALLOWED_ADDRESSES: 'intranet'",
        ),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least 16"),
        ("METRICS_TOKEN", "sixteen-chars-plus-\u00e9", "METRICS_TOKEN must be at least 16"),
        ("METRICS_TOKEN_FILE", "/nonexistent/metrics_token", "METRICS_TOKEN_FILE=/nonexistent"),
        ("METRICS_FINISHED_WINDOW_S", "nan", "METRICS_FINISHED_WINDOW_S='nan'"),
        ("METRICS_MAX_SESSIONS", "0", "METRICS_MAX_SESSIONS='0'"),
    ],
)
def test_bad_metrics_settings_stop_the_process_naming_the_variable(
    tmp_path, variable, raw, message
):

    env = {**os.environ, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 50, variable: raw}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
