"""The Flows page in a real browser on the real web process: an admin creates a flow with the
steps editor (a bad step named by number first), sees it listed with its steps, and deletes
it; a viewer sees the list without the buttons. The New session form's request mix counts a
flow's steps."""

import json
import re

import pytest
from playwright.sync_api import expect

from apps.sessions.models import Endpoint, Flow, FlowStep, Target

from ..support.browser import screenshot, sign_in
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_lists_and_deletes_a_flow(dashboard_web, chromium, settings):
    persona("ada", "admin")
    persona("vic", "viewer")
    target = Target.objects.create(name="demo", base_url="http://127.0.0.1:5001")
    for name, url, method in (("login", "/login", "POST"), ("cart-view", "/cart", "GET")):
        Endpoint.objects.create(target=target, name=name, url=url, method=method)

    page = sign_in(chromium, dashboard_web, "ada", "ada-pw-42")
    page.get_by_role("link", name="Flows").click()
    expect(page.get_by_test_id(f"flows-{target.pk}")).to_contain_text("No flow yet.")
    page.get_by_test_id("new-flow").click()
    page.get_by_label("Name").fill("shop")
    page.get_by_label("Weight").fill("2")
    steps = [
        {"endpoint": "login", "think_time_s": 0.5,
         "extract": [{"name": "csrf_token", "json_path": "$.csrf_token"}]},
        {"endpoint": "cart-vew"},
    ]  # fmt: skip
    page.get_by_label("Steps").fill(json.dumps(steps))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("steps-errors")).to_contain_text(
        "Step 2, endpoint: The target 'demo' has no endpoint 'cart-vew'"
    )
    assert not Flow.objects.exists()
    steps[1]["endpoint"] = "cart-view"
    page.get_by_label("Steps").fill(json.dumps(steps))
    page.get_by_role("button", name="Save").click()
    row = page.locator('tr[data-flow="shop"]')
    expect(row).to_contain_text("login POST /login · extracts csrf_token · then 0.5 s")
    expect(row).to_contain_text("cart-view GET /cart")
    expect(row.locator("td.num")).to_have_text("2")
    flow = Flow.objects.get(name="shop")
    assert list(flow.steps.values_list("endpoint__name", flat=True)) == ["login", "cart-view"]
    screenshot(page, "flows-page")

    viewer = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    viewer.goto(dashboard_web.url("/flows/"))
    expect(viewer.locator('tr[data-flow="shop"]')).to_contain_text("cart-view")
    expect(viewer.get_by_test_id("new-flow")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Delete")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id(f"flows-{target.pk}")).to_contain_text("No flow yet.")
    assert not Flow.objects.exists()


def test_the_new_session_form_counts_each_step_of_a_flow_in_the_request_mix(
    dashboard_web, chromium
):
    """A new user read a flow's share of picks as its share of the load: a pick of a
    two-step flow sends two requests, and the Share column says so."""
    persona("olga", "operator")
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    home = Endpoint.objects.create(target=target, name="home", url="/", weight=1)
    login = Endpoint.objects.create(target=target, name="login", url="/login", weight=0)
    view = Endpoint.objects.create(target=target, name="cart-view", url="/cart", weight=0)
    flow = Flow.objects.create(target=target, name="shop", weight=1)
    FlowStep.objects.create(flow=flow, position=1, endpoint=login)
    FlowStep.objects.create(flow=flow, position=2, endpoint=view)

    page = sign_in(chromium, dashboard_web, "olga", "olga-pw-42")
    page.goto(dashboard_web.url(f"/sessions/new/?target={target.pk}"))

    def share(input_id: str):
        return (
            page.locator("#weights tbody tr")
            .filter(has=page.locator(input_id))
            .locator("[data-share]")
        )

    # One pick in two is the flow's, which sends two requests: 2 of every 3 requests.
    expect(share(f"#id_weight_{home.pk}")).to_have_text(re.compile(r"33[.,]3 %"))
    expect(share(f"#id_weight_flow_{flow.pk}")).to_have_text(re.compile(r"66[.,]7 %"))
    expect(share(f"#id_weight_{login.pk}")).to_have_text(re.compile(r"0[.,]0 %"))
    page.locator(f"#id_weight_flow_{flow.pk}").fill("2")
    expect(share(f"#id_weight_{home.pk}")).to_have_text(re.compile(r"20[.,]0 %"))
    expect(share(f"#id_weight_flow_{flow.pk}")).to_have_text(re.compile(r"80[.,]0 %"))
    expect(page.locator("#weights thead")).to_contain_text("Share of requests")
