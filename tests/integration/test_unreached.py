"""Attempts that never reached the target are counted apart: a refused connection and a
connect timeout (a listen backlog that is full) are requests and failures of the session,
counted as ``unreached``, so that ``total_requests - unreached`` is exactly what the target
received, and the API, the page and the report say so."""

import pytest

from apps.sessions.models import Endpoint, LoadTestSession, Target

from ..support.servers import FullBacklogListener, closed_port
from ..support.sessions import BRISK, create_session, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def full_backlog():
    listener = FullBacklogListener().start()
    yield listener
    listener.stop()


def test_refused_and_timed_out_connections_are_unreached_and_the_rest_equals_the_target(
    api, client, operator, workers, counting_server, full_backlog, forget_redis_sessions
):
    target = Target.objects.create(name="partly-reachable", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ok", url="/ping", weight=1.0)
    refused_url = f"http://127.0.0.1:{closed_port()}/refused"
    Endpoint.objects.create(target=target, name="refused", url=refused_url, weight=1.0)
    Endpoint.objects.create(
        target=target, name="busy", url=f"{full_backlog.base_url}/busy", weight=1.0, timeout_s=0.5
    )
    session_id = create_session(api, target.pk, concurrent_users=4, duration_minutes="0", **BRISK)
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202

    def stats():
        return api.get(f"/api/sessions/{session_id}/stats/").json()

    def by_name():
        return {row["name"]: row for row in stats()["endpoints"]}

    # Enough of each: a few connect timeouts (0.5 s each) and refusals, and answers.
    wait_until(
        lambda: (
            by_name().get("busy", {}).get("unreached", 0) >= 3
            and by_name().get("refused", {}).get("unreached", 0) >= 3
        ),
        timeout_s=30,
        what="refused and timed-out attempts counted",
    )
    assert api.post(f"/api/sessions/{session_id}/stop/").status_code == 202
    session = wait_for_status(session_id, timeout_s=20)
    assert session.status == "stopped"

    endpoints = by_name()
    run = stats()["run"]
    # Every attempt at the closed port and the full backlog never reached its target...
    for name in ("refused", "busy"):
        row = endpoints[name]
        assert row["unreached"] == row["requests"] > 0, row
    # ...and is a failure the user sees: refused is a network failure, the busy one a
    # timeout (minus any the stop cut while connecting: neither failures nor reached).
    assert endpoints["refused"]["failures_by_class"].get("network", 0) == (
        endpoints["refused"]["requests"] - endpoints["refused"]["cut_by_stop"]
    )
    assert endpoints["busy"]["failures_by_class"].get("timeout", 0) == (
        endpoints["busy"]["requests"] - endpoints["busy"]["cut_by_stop"]
    )
    assert run["error_rate"] > 0
    assert endpoints["ok"]["unreached"] == 0
    unreached = sum(row["unreached"] for row in endpoints.values())
    assert run["unreached"] == unreached
    # The promise the docs make, exactly: what the target received is requests - unreached.
    session = LoadTestSession.objects.get(pk=session_id)
    assert session.total_requests - unreached == counting_server.total + full_backlog.received
    assert counting_server.total == endpoints["ok"]["requests"] > 0

    # The session page and the report show the count.
    client.force_login(operator)
    page = client.get(f"/sessions/{session_id}/").content.decode()
    assert 'data-field="counted_apart"' in page
    report = client.get(f"/api/sessions/{session_id}/report/").content.decode()
    assert f'<span data-field="unreached">{unreached:,}</span> never reached the target' in report
    received = session.total_requests - unreached
    assert f'<span data-field="received_by_target">{received:,}</span>' in report
