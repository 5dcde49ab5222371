"""A session mixes single endpoints and flows by weight: ``endpoint_weights`` names either,
the plan carries each flow's steps as extra endpoint entries (weight 0, ``flow`` set) and the
flows themselves, and live weights have ``Plan.pick_weights()``'s shape (one per plan endpoint,
then one per flow), checked against real Redis."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.choices import SessionStatus
from apps.sessions.lifecycle.editing import create_session
from apps.sessions.lifecycle.live import change_weights, live_endpoint_weights
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import Endpoint, Flow, FlowStep, LoadTestSession, Target
from apps.workers.control import WEIGHTS_FIELD, SessionKeys
from apps.workers.plan import Plan

pytestmark = pytest.mark.django_db

LOGIN_EXTRACT = [{"name": "csrf_token", "json_path": "$.csrf_token"}]


@pytest.fixture
def target(settings):
    settings.ALLOWED_TARGET_HOSTS = ["127.0.0.1:5001"]
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    endpoints = {
        name: Endpoint.objects.create(
            target=target, name=name, url=url, method=method, weight=weight,
            headers={"X-Test": "1"} if name == "cart-add" else {},
            body='{"product_id": 7}' if name == "cart-add" else "",
            expected_statuses="200-299,409" if name == "cart-add" else "200-399",
            checks=[{"type": "max_ms", "value": 500}] if name == "cart-view" else [],
            timeout_s=7 if name == "login" else 30,
        )
        for name, url, method, weight in (
            ("cart-add", "/cart/items", "POST", 0.0),
            ("cart-view", "/cart", "GET", 1.0),
            ("home", "/", "GET", 3.0),
            ("login", "/login", "POST", 0.0),
        )
    }  # fmt: skip
    shop = Flow(target=target, name="shop", weight=2.0)
    save_flow(
        shop,
        [
            FlowStep(endpoint=endpoints["login"], think_time_s=0.5, extract=LOGIN_EXTRACT),
            FlowStep(endpoint=endpoints["cart-add"], think_time_s=0.25),
            FlowStep(endpoint=endpoints["cart-view"]),
        ],
    )
    browse = Flow(target=target, name="browse", weight=0.0)
    save_flow(browse, [FlowStep(endpoint=endpoints["home"])])
    return target


def new_session(target, **fields) -> LoadTestSession:
    return create_session(LoadTestSession(session_name="mix", target=target, **fields))


def test_the_plan_appends_each_weighted_flows_steps_and_the_flow(target):
    plan = build_plan(new_session(target))
    singles = [(e.name, e.weight, e.flow) for e in plan.endpoints if e.flow is None]
    # Endpoints of weight 0 stay out as single requests; flows of weight 0 stay out.
    assert singles == [("cart-view", 1.0, None), ("home", 3.0, None)]
    steps = plan.endpoints[2:]
    assert [(e.name, e.weight, e.flow) for e in steps] == [
        ("shop \u203a 1. login", 0.0, 0),
        ("shop \u203a 2. cart-add", 0.0, 0),
        ("shop \u203a 3. cart-view", 0.0, 0),
    ]
    login, cart_add, cart_view = steps
    assert (login.method, login.url, login.timeout_s) == ("POST", "http://127.0.0.1:5001/login", 7)
    assert (dict(cart_add.headers), cart_add.body) == ({"X-Test": "1"}, '{"product_id": 7}')
    assert cart_add.expected_statuses == "200-299,409"
    assert [dict(check) for check in cart_view.checks] == [{"type": "max_ms", "value": 500}]
    assert login.endpoint_id == Endpoint.objects.get(name="login").pk
    (shop,) = plan.flows
    assert (shop.name, shop.weight, shop.flow_id) == ("shop", 2.0, Flow.objects.get(name="shop").pk)
    assert [(s.endpoint, s.think_time_s) for s in shop.steps] == [(2, 0.5), (3, 0.25), (4, 0.0)]
    assert [list(map(dict, s.extract)) for s in shop.steps] == [LOGIN_EXTRACT, [], []]
    assert plan.pick_weights() == [1.0, 3.0, 0.0, 0.0, 0.0, 2.0]
    # What shards read back is what was built.
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_endpoint_weights_name_flows_too(target):
    session = new_session(target, endpoint_weights={"browse": 1.5, "shop": 0, "home": 0})
    plan = build_plan(session)
    assert [flow.name for flow in plan.flows] == ["browse"]
    assert [e.name for e in plan.endpoints] == ["cart-view", "browse \u203a 1. home"]
    assert plan.pick_weights() == [1.0, 0.0, 1.5]
    with pytest.raises(ValidationError) as caught:
        new_session(target, endpoint_weights={"checkout": 1})
    assert "Unknown endpoint 'checkout'" in " ".join(caught.value.message_dict["endpoint_weights"])


def test_only_flows_with_weight_is_something_to_send(target):
    session = new_session(target, endpoint_weights={"cart-view": 0, "home": 0})
    plan = build_plan(session)
    assert [e.weight for e in plan.endpoints if e.flow is None] == []
    assert [flow.name for flow in plan.flows] == ["shop"]
    with pytest.raises(ValidationError) as caught:
        new_session(target, endpoint_weights={"cart-view": 0, "home": 0, "shop": 0})
    assert "positive weight" in " ".join(caught.value.message_dict["endpoint_weights"])


def test_the_api_accepts_flow_names_in_a_sessions_weights(api, target):
    response = api.post(
        "/api/sessions/",
        {"session_name": "s", "target": target.pk, "endpoint_weights": {"shop": 5, "home": 0}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    bad = api.post(
        "/api/sessions/",
        {"session_name": "s", "target": target.pk, "endpoint_weights": {"shop": -1}},
        format="json",
    )
    assert bad.status_code == 400
    assert "The weight of 'shop' must be from 0" in " ".join(bad.json()["endpoint_weights"])


def test_a_long_flow_name_keeps_step_names_within_their_column(target):
    long_name = "f" * 100
    save_flow(
        Flow(target=target, name=long_name),
        [FlowStep(endpoint=Endpoint.objects.get(name="home"))],
    )
    plan = build_plan(new_session(target))
    step = next(e for e in plan.endpoints if e.flow is not None and e.name.endswith("home"))
    assert len(step.name) <= 100
    assert step.name.endswith("... \u203a 1. home")


def running(session: LoadTestSession) -> LoadTestSession:
    """The session as its start leaves it (plan frozen, running), without shards."""
    LoadTestSession.objects.filter(pk=session.pk).update(
        status=SessionStatus.RUNNING,
        start_time=timezone.now(),
        plan=build_plan(session).to_json(),
    )
    session.refresh_from_db()
    return session


def test_live_weights_have_the_pick_weights_shape(target, redis_client, forget_redis_sessions):
    session = running(new_session(target))
    assert live_endpoint_weights(session) is None  # unchanged since the start
    session = change_weights(session, {"shop": 4, "home": 1})
    stored = json.loads(redis_client.hget(SessionKeys(session.pk).control, WEIGHTS_FIELD))
    # cart-view, home, the shop's three steps (never picked alone), then shop.
    assert stored == [1.0, 1.0, 0.0, 0.0, 0.0, 4.0]
    assert stored.__len__() == len(session.read_plan().pick_weights())
    assert live_endpoint_weights(session) == stored
    session = change_weights(session, {"shop": 0, "cart-view": 0, "home": 2})
    stored = json.loads(redis_client.hget(SessionKeys(session.pk).control, WEIGHTS_FIELD))
    assert stored == [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    # A flow left out at the start has no steps in the plan: refused, with the way out.
    with pytest.raises(ValidationError) as caught:
        change_weights(session, {"browse": 1})
    assert "clone the session" in " ".join(caught.value.message_dict["endpoint_weights"])
    with pytest.raises(ValidationError):
        change_weights(session, {"shop": 0, "cart-view": 0, "home": 0})


def test_the_session_page_offers_flows_among_the_live_weights(client, operator, target):
    session = new_session(target, endpoint_weights={"shop": 4})
    client.force_login(operator)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert 'data-endpoint="shop" value="4' in page
    assert 'data-endpoint="browse" value="0' in page
    assert 'data-endpoint="home" value="3' in page


def test_the_new_session_form_has_a_weight_per_flow(client, operator, target):
    client.force_login(operator)
    page = client.get(f"/sessions/new/?target={target.pk}").content.decode()
    shop = Flow.objects.get(name="shop")
    assert f'name="weight_flow_{shop.pk}"' in page
    assert "flow of 3 steps" in page
    form = {"session_name": "mix", "target": target.pk, "concurrent_users": "1",
            "duration_minutes": "1", "request_interval_min": "1", "request_interval_max": "2",
            "max_errors_per_minute": "0", "ramp_up_seconds": "0", "model": "closed",
            f"weight_flow_{shop.pk}": "7"}  # fmt: skip
    for endpoint in Endpoint.objects.filter(target=target):
        form[f"weight_{endpoint.pk}"] = str(endpoint.weight)
    form[f"weight_flow_{Flow.objects.get(name='browse').pk}"] = "0"
    response = client.post("/sessions/new/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert LoadTestSession.objects.get(session_name="mix").endpoint_weights["shop"] == 7
