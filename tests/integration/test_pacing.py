"""Pacing models: the open model holds its rate whatever the target does and measures latency
from the intended send time; requests it cannot send on time are counted; ramp-up is linear."""

import json
import time

import pytest

from apps.workers.control import SessionKeys

from ..support.engine import plan_for, shard_in_thread, totals
from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_open_model_holds_its_rate_when_the_target_slows_down(
    api, workers, counting_server, forget_redis_sessions
):
    rate_rps, phase_s = 40, 3.0
    session_id = start_load(
        api, counting_server, concurrent_users=30, target_rps=rate_rps, duration_minutes="0"
    )
    wait_until(lambda: counting_server.total > 0, timeout_s=15, interval_s=0.01)
    time.sleep(0.5)  # past the first, partial second
    before_fast = counting_server.total
    time.sleep(phase_s)
    fast = counting_server.total - before_fast
    counting_server.delay_s = 0.3  # 12 requests in flight at 40/s: within 30 users
    time.sleep(0.5)
    before_slow = counting_server.total
    time.sleep(phase_s)
    slow = counting_server.total - before_slow
    api.post(f"/api/sessions/{session_id}/stop/")
    session = wait_for_status(session_id, timeout_s=20)

    expected = rate_rps * phase_s
    assert abs(fast - expected) <= 0.15 * expected, fast
    assert abs(slow - expected) <= 0.15 * expected, slow  # the rate did not follow latency
    assert session.total_requests == counting_server.total
    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    (endpoint,) = stats["endpoints"]
    assert endpoint["p90_ms"] >= 300  # the slow half is visible in the figures
    # Within 30 users nothing waits for a free one; a generator starved of CPU by the tests
    # running beside it may still miss a few sends (counted), never a share of the rate.
    assert set(stats["not_sent"]) <= {"missed"}, stats["not_sent"]
    assert stats["not_sent"].get("missed", 0) <= 0.05 * expected, stats["not_sent"]


def test_open_model_counts_requests_it_could_not_send_on_time(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.delay_s = 0.2  # 2 users x 5 answers/s = 10/s at most, of 50/s wanted
    session_id = start_load(
        api, counting_server, concurrent_users=2, target_rps=50, duration_minutes="0"
    )
    wait_until(lambda: counting_server.total > 20, timeout_s=15)
    api.post(f"/api/sessions/{session_id}/stop/")
    session = wait_for_status(session_id, timeout_s=20)

    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    assert session.total_requests == counting_server.total  # only what was sent
    missed = stats["not_sent"]["missed"]
    assert missed > 2 * session.total_requests  # about 4 missed for each one sent
    elapsed_s = session.duration_s()
    assert session.total_requests + missed <= 50 * elapsed_s


def test_open_model_latency_runs_from_the_intended_send_time(
    counting_server, redis_url, redis_client, forget_redis_sessions
):
    """A generator that falls behind (here: its event loop blocked for 0.3 s) sends late,
    and the wait counts in the latency although the target answers at once."""
    plan = plan_for([("ping", f"{counting_server.base_url}/ping")], target_rps=100)
    with shard_in_thread(redis_client, redis_url, plan, users=20, rps=100.0) as (session, loop):
        wait_until(lambda: counting_server.total > 50, timeout_s=10)
        stalled_at = counting_server.total
        loop.call_soon_threadsafe(time.sleep, 0.3)  # the generator stalls
        wait_until(lambda: counting_server.total > stalled_at + 50, timeout_s=10,
                   what="Requests sent after the stall")  # fmt: skip

    (ping,) = totals(redis_client, session).values()
    assert ping.requests == counting_server.total
    assert ping.max_us >= 250_000  # requests due during the stall waited for it
    assert ping.percentiles_ms()[0.5] < 50  # the others did not


def test_ramp_up_brings_users_in_linearly(
    api, workers, counting_server, forget_redis_sessions, redis_client
):
    session_id = start_load(
        api, counting_server, concurrent_users=10, ramp_up_seconds=4, duration_minutes="0",
        **BRISK,
    )  # fmt: skip
    key = SessionKeys(session_id).heartbeat(0)
    wait_until(lambda: redis_client.get(key), timeout_s=15, interval_s=0.02)
    started = time.monotonic()

    def users():
        return json.loads(redis_client.get(key))["users"]

    time.sleep(max(0.0, started + 2.0 - time.monotonic()))
    halfway = users()
    wait_until(lambda: users() == 10, timeout_s=6)
    full_after_s = time.monotonic() - started
    api.post(f"/api/sessions/{session_id}/stop/")
    session = wait_for_status(session_id, timeout_s=20)

    assert 2 <= halfway <= 8, halfway  # about 5 at half time
    assert 3.0 <= full_after_s <= 6.0, full_after_s
    assert session.total_requests == counting_server.total


def test_latency_resolution_is_finer_than_a_millisecond_on_the_workers_loop(
    counting_server, redis_url, redis_client, forget_redis_sessions
):
    """uvloop's own clock ticks in whole milliseconds; latencies must not."""
    plan = plan_for([("ping", f"{counting_server.base_url}/ping")])
    with shard_in_thread(redis_client, redis_url, plan, users=2, uvloop=True) as (session, _):
        wait_until(lambda: counting_server.total > 100, timeout_s=10)

    (ping,) = totals(redis_client, session).values()
    # A local answer takes a fraction of a millisecond: a clock in whole milliseconds would
    # record it as 0 or as 1000 µs and more.
    assert 0 < ping.min_us < 1000
