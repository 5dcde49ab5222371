"""Expected statuses and response checks classify answers of real servers on 127.0.0.1.

The shard runs in this process (``tests/support/engine.py``: real Redis, real sockets) where the
test reads what it recorded; one test goes through the API and the real Celery workers to
the statistics a user reads.
"""

import json

import pytest

from apps.workers.plan import EndpointPlan, Plan

from ..support.engine import events, shard_in_thread, totals
from ..support.sessions import BRISK, create_session, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

GOOD_JSON = json.dumps({"status": "ok", "items": [{"id": 7}], "user": {"token": "s3cr3t"}})


def endpoint(name, url, expected_statuses="200-399", checks=(), timeout_s=5.0):
    return EndpointPlan(
        name=name,
        method="GET",
        url=url,
        timeout_s=timeout_s,
        weight=1.0,
        expected_statuses=expected_statuses,
        checks=tuple(checks),
    )


def run(redis_client, redis_url, endpoints, at_least=5, **settings):
    """Send load to ``endpoints`` until each has ``at_least`` requests; their totals."""
    plan = Plan(endpoints=tuple(endpoints), request_interval_min=0.01, request_interval_max=0.02)

    def enough():
        figures = totals(redis_client, session)
        return len(figures) == len(endpoints) and all(
            entry.requests >= at_least for entry in figures.values()
        )

    with shard_in_thread(redis_client, redis_url, plan, users=4, breaker_failures=0,
                         **settings) as (session, _):  # fmt: skip
        wait_until(enough, timeout_s=20)
    return totals(redis_client, session), events(redis_client, session)


def test_expected_500s_count_as_successes(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.statuses.update({"/boom": 500, "/gone": 503})
    base = counting_server.base_url
    figures, _ = run(redis_client, redis_url, [
        endpoint("boom", f"{base}/boom", "500"),
        endpoint("gone", f"{base}/gone", "200-299,503"),
    ])  # fmt: skip
    for index, path in ((0, "/boom"), (1, "/gone")):
        assert figures[index].failures_by_class == {}
        assert figures[index].requests == counting_server.count(path)


@pytest.mark.parametrize(
    ("status", "expected", "failure"),
    [
        (500, "200-399", "http_5xx"),
        (503, "500", "http_5xx"),
        (404, "200-399,500", "http_4xx"),
        (200, "201", "application"),  # the target answered, not as the test says it must
        (302, "200-299", "application"),
        (201, "201", None),
    ],
)
def test_unexpected_statuses_are_classified_by_their_code(
    redis_client, redis_url, counting_server, forget_redis_sessions, status, expected, failure
):
    counting_server.statuses["/x"] = status
    figures, samples = run(
        redis_client, redis_url, [endpoint("x", f"{counting_server.base_url}/x", expected)]
    )
    x = figures[0]
    assert x.failures_by_class == ({failure: x.requests} if failure else {})
    assert x.requests == counting_server.count("/x")
    if failure:
        assert any(f"HTTP {status}" in sample["message"] for sample in samples)


CHECKS = {
    "body_contains": {"type": "body_contains", "value": '"ok"'},
    "body_not_contains": {"type": "body_not_contains", "value": "error"},
    "json_path_equals": {"type": "json_path_equals", "path": "$.items[0].id", "value": 7},
    "json_path_exists": {"type": "json_path_exists", "path": "$.user.token"},
    "header_present": {"type": "header_present", "header": "X-Request-Id"},
}
WRONG_ANSWERS = {  # a 200 that fails only the check of the same name
    "body_contains": json.dumps({"status": "fine", "items": [{"id": 7}], "user": {"token": 1}}),
    "body_not_contains": json.dumps(
        {"status": "ok", "error": 1, "items": [{"id": 7}], "user": {"token": 1}}
    ),
    "json_path_equals": json.dumps({"status": "ok", "items": [{"id": "7"}], "user": {"token": 1}}),
    "json_path_exists": json.dumps({"status": "ok", "items": [{"id": 7}], "user": {}}),
    "header_present": GOOD_JSON,
}


def test_each_check_passes_on_a_right_answer_and_fails_by_name_on_a_wrong_one(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    base = counting_server.base_url
    counting_server.bodies["/good"] = GOOD_JSON
    counting_server.headers["/good"] = {"X-Request-Id": "abc"}
    every_check = [{**check, "name": name} for name, check in CHECKS.items()]
    endpoints = [endpoint("good", f"{base}/good", checks=every_check)]
    for name in CHECKS:
        counting_server.bodies[f"/{name}"] = WRONG_ANSWERS[name]
        if name != "header_present":
            counting_server.headers[f"/{name}"] = {"X-Request-Id": "abc"}
        endpoints.append(endpoint(name, f"{base}/{name}", checks=every_check))
    figures, samples = run(redis_client, redis_url, endpoints)

    assert figures[0].failures_by_class == {} and figures[0].check_failures == {}
    for index, name in enumerate(CHECKS, start=1):
        wrong = figures[index]
        assert wrong.failures_by_class == {"application": wrong.requests}, name
        assert wrong.check_failures == {name: wrong.requests}, name
        sampled = [sample for sample in samples if sample.get("endpoint") == name]
        assert sampled and all(f"check '{name}' failed" in s["message"] for s in sampled)
        assert all(sample["failure_class"] == "application" for sample in sampled)
        assert not any("s3cr3t" in sample["message"] for sample in sampled)


def test_a_max_ms_check_fails_a_slow_answer_and_passes_a_fast_one(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.delays["/slow"] = 0.3
    base = counting_server.base_url
    figures, samples = run(redis_client, redis_url, [
        endpoint("slow", f"{base}/slow", checks=[{"type": "max_ms", "value": 100}]),
        endpoint("fast", f"{base}/fast", checks=[{"type": "max_ms", "value": 5000}]),
    ], at_least=3)  # fmt: skip
    slow, fast = figures[0], figures[1]
    assert slow.failures_by_class == {"application": slow.requests}
    assert slow.check_failures == {"max_ms": slow.requests}
    assert slow.min_us >= 300_000  # it was slow indeed
    assert fast.failures_by_class == {} and fast.check_failures == {}
    assert any(
        "expected below 100 ms" in s["message"] for s in samples if s.get("endpoint") == "slow"
    )


def test_a_checked_body_longer_than_the_limit_fails_its_json_check(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.bodies["/big"] = json.dumps({"status": "ok", "pad": "x" * 5000})
    figures, _ = run(redis_client, redis_url, [
        endpoint("big", f"{counting_server.base_url}/big",
                 checks=[{"type": "json_path_exists", "path": "$.status"}]),
    ], check_body_limit=1000)  # fmt: skip
    assert figures[0].check_failures == {"json_path_exists": figures[0].requests}


@pytest.mark.django_db(transaction=True)
def test_checks_and_expected_statuses_reach_the_api_statistics_through_the_workers(
    admin_api, api, workers, counting_server, forget_redis_sessions
):
    counting_server.statuses["/flaky"] = 503
    counting_server.bodies["/wrong"] = json.dumps({"status": "error"})
    target = admin_api.post(
        "/api/targets/", {"name": "checked", "base_url": counting_server.base_url}, format="json"
    ).json()["id"]
    for body in (
        {"name": "flaky", "url": "/flaky", "expected_statuses": "200-299, 503"},
        {"name": "wrong", "url": "/wrong", "checks": [
            {"name": "says ok", "type": "json_path_equals", "path": "$.status", "value": "ok"}]},
    ):  # fmt: skip
        created = admin_api.post("/api/endpoints/", {"target": target, **body}, format="json")
        assert created.status_code == 201, created.json()
    assert created.json()["checks"][0]["name"] == "says ok"
    flaky = admin_api.get(f"/api/endpoints/?target={target}").json()
    rows = flaky["results"] if isinstance(flaky, dict) else flaky
    assert {row["name"]: row["expected_statuses"] for row in rows}["flaky"] == "200-299,503"

    session_id = create_session(
        api, target, concurrent_users=4, duration_minutes="0.1", max_errors_per_minute=0, **BRISK
    )
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    session = wait_for_status(session_id, timeout_s=60)
    assert (session.status, session.end_reason) == ("completed", "completed"), session.end_detail

    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    by_name = {entry["name"]: entry for entry in stats["endpoints"]}
    assert by_name["flaky"]["requests"] == counting_server.count("/flaky") > 0
    assert by_name["flaky"]["failures"] == 0 and by_name["flaky"]["check_failures"] == {}
    wrong = by_name["wrong"]
    assert wrong["requests"] == counting_server.count("/wrong") > 0
    assert wrong["failures_by_class"] == {"application": wrong["requests"]}
    assert wrong["check_failures"] == {"says ok": wrong["requests"]}
    errors = api.get(f"/api/sessions/{session_id}/errors/").json()
    errors = errors["results"] if isinstance(errors, dict) else errors
    assert any("check 'says ok' failed" in row["message"] for row in errors), errors
