"""Every failure gets its class: network, timeout, HTTP 4xx/5xx, application (our own
exception, logged and reported as an event), measured on real sockets."""

import pytest

from loadtest_project.embedded_redis import free_port

from ..support.engine import events, plan_for, shard_in_thread, totals
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def failures_of(redis_client, redis_url, endpoint, at_least=3, **settings):
    plan = plan_for([endpoint])
    with shard_in_thread(redis_client, redis_url, plan, users=2, **settings) as (session, _):
        wait_until(lambda: totals(redis_client, session).get(0, None)
                   and totals(redis_client, session)[0].requests >= at_least,
                   timeout_s=15)  # fmt: skip
    return session, totals(redis_client, session)[0]


def test_connection_refused_is_a_network_failure(redis_client, redis_url, forget_redis_sessions):
    closed = f"http://127.0.0.1:{free_port()}/nothing-listens"
    _, ping = failures_of(redis_client, redis_url, ("down", closed), breaker_failures=0)
    assert ping.failures_by_class == {"network": ping.requests}


def test_answer_slower_than_the_timeout_is_a_timeout(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.delay_s = 1.0
    endpoint = ("slow", f"{counting_server.base_url}/slow", 0.2)  # 200 ms timeout
    _, slow = failures_of(redis_client, redis_url, endpoint, breaker_failures=0)
    assert set(slow.failures_by_class) == {"timeout"}
    assert slow.max_us < 900_000  # the timeout cut it short, not the answer


@pytest.mark.parametrize(("status", "failure"), [(404, "http_4xx"), (500, "http_5xx"),
                                                  (503, "http_5xx"), (302, None)])  # fmt: skip
def test_http_status_classes(
    redis_client, redis_url, counting_server, forget_redis_sessions, status, failure
):
    counting_server.statuses["/x"] = status
    _, x = failures_of(redis_client, redis_url, ("x", f"{counting_server.base_url}/x"),
                       breaker_failures=0)  # fmt: skip
    expected = {failure: x.requests} if failure else {}
    assert x.failures_by_class == expected
    assert x.requests == counting_server.count("/x")


def test_exception_in_our_own_code_is_an_application_failure_and_an_event(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    # A header value aiohttp refuses to send: the exception is ours, not the target's.
    endpoint = ("bad", f"{counting_server.base_url}/bad", 5, {"X-Broken": "line\nbreak"})
    session, bad = failures_of(redis_client, redis_url, endpoint)
    assert bad.failures_by_class == {"application": bad.requests}
    assert counting_server.count("/bad") == 0
    (first, *_) = [event for event in events(redis_client, session)
                   if event["kind"] == "engine_error"]  # fmt: skip
    assert "bad:" in first["message"]
