"""Flows in the engine: a virtual user logs in, keeps its cookie, extracts a token, uses it,
and a failed step ends the iteration. The shard runs in this process against real Redis and
a real shop server on 127.0.0.1 (``tests/support/shop_server.py``), which logs every request with
the user its session cookie belongs to: the test's truth about what each user sent."""

from collections import defaultdict

import pytest

from apps.workers.control import SessionKeys
from apps.workers.plan import EndpointPlan, FlowPlan, Plan, StepPlan
from apps.workers.stats import parse_flow_stats

from ..support.engine import events, shard_in_thread, totals
from ..support.shop_server import ShopServer
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration]

LOGIN_BODY = '{"username": "user{{ user_id }}", "password": "demo"}'
TOKEN_BY = {
    "json": {"name": "csrf_token", "json_path": "$.csrf_token"},
    "html": {"name": "csrf_token", "regex": 'name="csrf" value="([0-9a-f]+)"'},
    "header": {"name": "csrf_token", "header": "X-Csrf-Token"},
}


@pytest.fixture
def shop():
    server = ShopServer().start()
    yield server
    server.stop()


def shop_plan(base, extract, *, cart_expected="201", open_rps=None):
    step = {"timeout_s": 5.0, "weight": 0.0, "flow": 0}
    endpoints = (
        EndpointPlan(name="shop > 1. login", method="POST", url=f"{base}/login",
                     headers={"Content-Type": "application/json"}, body=LOGIN_BODY, **step),
        EndpointPlan(name="shop > 2. cart-add", method="POST", url=f"{base}/cart/items",
                     headers={"X-CSRF-Token": "{{ csrf_token }}"},
                     body='{"product_id": {{ random_int(1, 5000) }}}',
                     expected_statuses=cart_expected, **step),
        EndpointPlan(name="shop > 3. cart-view", method="GET", url=f"{base}/cart", **step),
    )  # fmt: skip
    flow = FlowPlan(
        name="shop",
        weight=1.0,
        steps=(
            StepPlan(endpoint=0, think_time_s=0.01, extract=(extract,)),
            StepPlan(endpoint=1, think_time_s=0.01),
            StepPlan(endpoint=2),
        ),
    )
    return Plan(
        endpoints=endpoints,
        flows=(flow,),
        request_interval_min=0.01,
        request_interval_max=0.02,
        target_rps=open_rps,
    )


def flow_totals(redis_client, session):
    return parse_flow_stats(redis_client.hgetall(SessionKeys(session).stats))


def run_until(redis_client, redis_url, plan, iterations, users=3, rps=0.0):
    with shard_in_thread(redis_client, redis_url, plan, users=users, rps=rps,
                         breaker_failures=0) as (session, _):  # fmt: skip
        wait_until(
            lambda: (
                flow_totals(redis_client, session).get(0)
                and flow_totals(redis_client, session)[0].iterations >= iterations
            ),
            timeout_s=20,
        )
    return session


def by_user(log):
    sequences = defaultdict(list)
    for user, what in log:
        sequences[user].append(what)
    return sequences


@pytest.mark.parametrize("source", ["json", "html", "header"])
def test_each_user_logs_in_extracts_the_token_and_uses_it_with_its_cookie(
    redis_client, redis_url, shop, forget_redis_sessions, source
):
    shop.token_in = source
    session = run_until(redis_client, redis_url, shop_plan(shop.base_url, TOKEN_BY[source]), 12)

    sequences = by_user(shop.events())
    assert set(sequences) == {"user1", "user2", "user3"}  # user_id numbers the users from 1
    for user, sequence in sequences.items():
        # login, cart, view, login, cart, view...; the last iteration may be cut by the stop.
        whole = len(sequence) - len(sequence) % 3
        assert sequence[:whole] == ["login", "cart", "view"] * (whole // 3), (user, sequence)
        assert whole >= 3
    flows = flow_totals(redis_client, session)[0]
    assert flows.iterations >= 12
    assert flows.failed == 0
    assert flows.min_us is not None and flows.min_us >= 20_000  # two 10 ms think times inside
    steps = totals(redis_client, session)
    assert steps[0].requests >= flows.iterations
    assert all(entry.failures == 0 for entry in steps.values())


def test_a_token_not_found_fails_the_step_and_ends_the_iteration(
    redis_client, redis_url, shop, forget_redis_sessions
):
    shop.token_in = "nowhere"
    session = run_until(redis_client, redis_url, shop_plan(shop.base_url, TOKEN_BY["json"]), 6)

    assert {what for _, what in shop.events()} == {"login"}  # the cart was never asked
    flows = flow_totals(redis_client, session)[0]
    assert flows.failed == flows.iterations >= 6
    login = totals(redis_client, session)[0]
    assert login.failures_by_class == {"application": login.requests}
    assert login.check_failures == {"extract csrf_token": login.requests}
    samples = [event for event in events(redis_client, session) if event["kind"] == "error_sample"]
    assert "extract 'csrf_token' failed: $.csrf_token not found" in samples[0]["message"]


def test_a_regex_that_backtracks_for_ever_fails_its_step_in_time_and_the_shard_goes_on(
    redis_client, redis_url, shop, forget_redis_sessions
):
    """With Python's own re, this pattern on this answer would run for longer than the age of
    the universe, holding the shard's event loop: every user of the shard stopped."""
    shop.token_in = "a-run"
    catastrophic = {"name": "csrf_token", "regex": "(a|aa)+$"}
    session = run_until(redis_client, redis_url, shop_plan(shop.base_url, catastrophic), 6)

    flows = flow_totals(redis_client, session)[0]
    assert flows.failed == flows.iterations >= 6
    login = totals(redis_client, session)[0]
    assert login.check_failures == {"extract csrf_token": login.requests}
    samples = [event for event in events(redis_client, session) if event["kind"] == "error_sample"]
    assert (
        "extract 'csrf_token' failed: the regex (a|aa)+$ took longer than 50 ms"
        in (samples[0]["message"])
    )


def test_an_unexpected_status_fails_the_iteration_and_skips_the_later_steps(
    redis_client, redis_url, shop, forget_redis_sessions
):
    shop.cart_status = 500
    session = run_until(redis_client, redis_url, shop_plan(shop.base_url, TOKEN_BY["json"]), 6)

    assert "view" not in {what for _, what in shop.events()}
    flows = flow_totals(redis_client, session)[0]
    assert flows.failed == flows.iterations >= 6
    cart = totals(redis_client, session)[1]
    assert cart.failures_by_class == {"http_5xx": cart.requests}
    assert 2 not in totals(redis_client, session)  # the view step: never sent


def test_open_model_arrivals_run_whole_flows_as_new_users(
    redis_client, redis_url, shop, forget_redis_sessions
):
    plan = shop_plan(shop.base_url, TOKEN_BY["json"], open_rps=20)
    session = run_until(redis_client, redis_url, plan, 10, users=20, rps=20)

    log = shop.events()
    assert "cart-refused" not in {what for _, what in log}
    logins = [user for user, what in log if what == "login"]
    assert len(set(logins)) == len(logins)  # every arrival is a new user
    assert flow_totals(redis_client, session)[0].failed == 0
