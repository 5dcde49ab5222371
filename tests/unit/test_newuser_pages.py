"""What a new user met on the dashboard's catalog pages (issue 14's new-user pass), as Django
renders them: every page carries the same navigation, and a flow's refusal names its step
once (real database; no engine needed)."""

import json

import pytest
from django.test import Client

from apps.sessions.models import Endpoint, Flow, FlowStep, Target

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    """A target with the demo's login and cart endpoints and a flow over them."""
    target = Target.objects.create(name="demo", base_url="http://127.0.0.1:5001")
    login = Endpoint.objects.create(target=target, name="login", url="/login", method="POST")
    Endpoint.objects.create(
        target=target,
        name="cart-add",
        url="/cart/items",
        method="POST",
        weight=0,
        headers={"X-CSRF-Token": "{{ csrf_token }}"},
    )
    flow = Flow.objects.create(target=target, name="shop")
    FlowStep.objects.create(flow=flow, position=1, endpoint=login)
    return target


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    ["/", "/sessions/", "/sessions/new/", "/workers/", "/schedules/", "/targets/",
     "/targets/{target}/", "/flows/", "/flows/new/", "/flows/{flow}/"],
)  # fmt: skip
def test_every_page_links_to_flower_in_its_navigation(administrator, demo, settings, path):
    settings.FLOWER_URL = "http://127.0.0.1:5555/"
    url = path.format(target=demo.pk, flow=demo.flows.get().pk)
    response = signed_in(administrator).get(url)
    assert response.status_code == 200
    assert b'<a class="nav-link" href="http://127.0.0.1:5555/">Flower</a>' in response.content


def test_a_step_reading_a_variable_too_early_is_named_once_on_the_flow_form(administrator, demo):
    steps = [
        {"endpoint": "cart-add"},
        {"endpoint": "login", "extract": [{"name": "csrf_token", "json_path": "$.csrf_token"}]},
    ]
    response = signed_in(administrator).post(
        "/flows/new/",
        {"target": demo.pk, "name": "early", "weight": "1", "steps": json.dumps(steps)},
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "Flow &#x27;early&#x27;, step 1 (cart-add): its templates use csrf_token" in text
    assert "Step 1, endpoint: Flow" not in text
    assert not Flow.objects.filter(name="early").exists()


def test_an_unknown_endpoint_is_still_led_by_its_step(administrator, demo):
    steps = [{"endpoint": "login"}, {"endpoint": "cart-vew"}]
    response = signed_in(administrator).post(
        "/flows/new/",
        {"target": demo.pk, "name": "typo", "weight": "1", "steps": json.dumps(steps)},
    )
    assert response.status_code == 400
    assert "Step 2, endpoint: The target &#x27;demo&#x27; has no endpoint" in (
        response.content.decode()
    )


def test_the_admin_names_a_step_reading_a_variable_too_early_once(client, administrator, demo):
    administrator.is_staff = True
    administrator.save()
    client.force_login(administrator)
    cart_add, login = demo.endpoints.get(name="cart-add"), demo.endpoints.get(name="login")
    rows = [
        {"position": "1", "endpoint": cart_add.pk, "think_time_s": "0", "extract": "[]"},
        {"position": "2", "endpoint": login.pk, "think_time_s": "0",
         "extract": json.dumps([{"name": "csrf_token", "json_path": "$.csrf_token"}])},
    ]  # fmt: skip
    data = {
        "target": demo.pk, "name": "early", "weight": "1", "description": "",
        "steps-TOTAL_FORMS": "2", "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for index, row in enumerate(rows):
        data.update({f"steps-{index}-{key}": value for key, value in row.items()})
    refused = client.post("/admin/loadtests/flow/add/", data)
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "Flow &#x27;early&#x27;, step 1 (cart-add): its templates use csrf_token" in text
    assert "Step 1, endpoint: Flow" not in text
    assert not Flow.objects.filter(name="early").exists()
