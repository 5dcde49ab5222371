"""Request templates are checked the same way everywhere they are saved: the API (a 400 naming
the field and the character), the admin form, the catalog file (naming the endpoint too); and
a session whose endpoints need what it cannot give them (a flow's variable, a feed column) is
refused when it starts (``build_plan``). Unicode and megabyte templates included."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.sessions.catalog.imports import import_catalog
from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import Endpoint, LoadTestSession, Target
from apps.sessions.validation import check_endpoint_templates, template_problems
from apps.workers.plan import EndpointPlan, FeedPlan, Plan

pytestmark = pytest.mark.django_db

TEMPLATED = {
    "url": "/users/{{ random_int(1, 5000) }}?q={{ choice('a', 'b') }}",
    "headers": {"X-Request": "r-{{ seq() }}"},
    "body": '{"id": "{{ uuid() }}", "at": "{{ now_iso() }}", "nested": {"a": 1}}',
}


@pytest.fixture
def target(settings):
    settings.ALLOWED_TARGET_HOSTS = ["127.0.0.1:5001"]
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


def test_the_api_stores_a_templated_endpoint_and_the_plan_carries_it(admin_api, target):
    created = admin_api.post(
        "/api/endpoints/", {"target": target.pk, "name": "t", **TEMPLATED}, format="json"
    )
    assert created.status_code == 201, created.json()
    absolute = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "abs", "url": "http://127.0.0.1:5001/u/{{ user_id }}"},
        format="json",
    )
    assert absolute.status_code == 201, absolute.json()
    session = LoadTestSession.objects.create(session_name="s", target=target)
    plan = {endpoint.name: endpoint for endpoint in build_plan(session).endpoints}
    assert plan["t"].url == "http://127.0.0.1:5001" + TEMPLATED["url"]
    assert plan["t"].body == TEMPLATED["body"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "/x/{{ rand(1) }}", "URL template, at character 6: unknown function 'rand'"),
        ("url", "/x/{{ random_int(5, 1) }}", "URL template, at character 17: random_int(a, b)"),
        ("body", "ab {{ uuid()", "Body template, at character 3: the '{{' at character 3 is"),
        ("body", "{{ choice() }}", "Body template, at character 10: choice() takes 1 to 100"),
        ("body", "{{ 1e400 }}", "Body template, at character 3: a number is digits"),
        ("body", "{{ ünï }}", "Body template, at character 3: unexpected character 'ü'"),
        ("headers", {"X-A": "{{ uuid }}"}, "Header 'X-A' template, at character 3: uuid is a "),
    ],
)
def test_the_api_refuses_a_bad_template_naming_field_and_position(
    admin_api, target, field, value, message
):
    entry = {"target": target.pk, "name": "e", "url": "/e", field: value}
    response = admin_api.post("/api/endpoints/", entry, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field]), response.json()
    assert not Endpoint.objects.exists()


def test_a_patch_is_checked_against_the_stored_fields_too(admin_api, target):
    endpoint = Endpoint.objects.create(target=target, name="e", url="/e")
    response = admin_api.patch(
        f"/api/endpoints/{endpoint.pk}/", {"body": "{{ seq(1) }}"}, format="json"
    )
    assert response.status_code == 400
    assert "Body template, at character 7: seq() takes no arguments" in response.json()["body"][0]
    assert Endpoint.objects.get(pk=endpoint.pk).body == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ 'evil.example' }}/x",
        "http://127.0.0.1:5001{{ user_id }}/x",
        "http://{{ feed.host }}/x",
    ],
)
def test_a_template_cannot_choose_the_host(admin_api, target, url):
    response = admin_api.post(
        "/api/endpoints/", {"target": target.pk, "name": "e", "url": url}, format="json"
    )
    assert response.status_code == 400
    assert "url" in response.json()
    assert not Endpoint.objects.exists()
    with pytest.raises(ValidationError) as caught:
        check_endpoint_templates(url, {}, "")
    assert "scheme or host" in " ".join(caught.value.message_dict["url"])


def test_a_host_header_cannot_hold_a_placeholder(admin_api, target):
    response = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "e", "url": "/e", "headers": {"Host": "{{ '127.0.0.1' }}"}},
        format="json",
    )
    assert response.status_code == 400  # the allow-list check reads the text as it is
    with pytest.raises(ValidationError) as caught:
        check_endpoint_templates("/e", {"host": "127.0.0.1{{ '' }}"}, "")
    assert caught.value.message_dict["headers"] == [
        "Header 'host' template, at character 9: the Host header cannot hold a placeholder "
        "(load goes only where the allow-list says)."
    ]


def test_megabyte_and_unicode_templates(admin_api, target):
    big = "é" * 400_000 + "{{ uuid() }}"  # 800,000 bytes of UTF-8
    ok = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "big", "url": "/☃/{{ user_id }}", "body": big},
        format="json",
    )
    assert ok.status_code == 201, ok.json()
    many = "{{ seq() }}" * 1001
    refused = admin_api.post(
        "/api/endpoints/", {"target": target.pk, "name": "many", "url": "/m", "body": many},
        format="json",
    )  # fmt: skip
    assert refused.status_code == 400
    assert "at most 1000 placeholders" in refused.json()["body"][0]
    huge = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "huge", "url": "/h", "body": "{{ '" + "x" * 2_000_000},
        format="json",
    )
    assert huge.status_code == 400
    assert "body" in huge.json()


def test_the_admin_form_names_the_template_error(superuser_client, target):
    form = {"target": target.pk, "name": "e", "url": "/e/{{ random_string(0) }}", "method": "GET",
            "weight": 1, "timeout_s": 5, "description": "", "headers": '{"X-A": "{{ a b }}"}',
            "body": "", "expected_statuses": "200-399", "checks": "[]"}  # fmt: skip
    refused = superuser_client.post(reverse("admin:loadtests_endpoint_add"), form)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "URL template, at character 20: random_string()'s argument" in " ".join(errors["url"])
    assert "Header 'X-A' template, at character 5: expected '}}'" in " ".join(errors["headers"])
    assert not Endpoint.objects.exists()
    fixed = {**form, "url": "/e/{{ random_string(8) }}", "headers": '{"X-A": "{{ seq() }}"}'}
    saved = superuser_client.post(reverse("admin:loadtests_endpoint_add"), fixed)
    assert saved.status_code == 302
    assert Endpoint.objects.get(name="e").url == "/e/{{ random_string(8) }}"


def test_the_catalog_file_names_the_endpoint_the_field_and_the_position(tmp_path, target):
    path = tmp_path / "catalog.json"
    endpoints = [
        {"name": "fine", "url": "/fine/{{ user_id }}"},
        {"name": "search ☃", "url": "/s", "body": '{"q": "{{ choice(\'a\', x) }}"}'},
    ]
    path.write_text(json.dumps({"target": {"base_url": target.base_url}, "endpoints": endpoints}))
    with pytest.raises(CatalogError) as caught:
        import_endpoints(str(path))
    message = str(caught.value)
    assert "endpoint 'search ☃': endpoints[1].body: Body template, at character 22: " in message
    assert "literal numbers or strings" in message
    assert not Endpoint.objects.exists()  # all or nothing


def test_services_import_catalog_refuses_the_same(target):
    with pytest.raises(ValidationError) as caught:
        import_catalog(
            {"base_url": target.base_url},
            [{"name": "e", "url": "/e", "headers": {"X-A": "{{ now_iso( }}"}}],
        )
    assert "Header 'X-A' template, at character 12" in str(caught.value.message_dict)


# --- what a session can fill -----------------------------------------------------------------


def test_build_plan_refuses_a_variable_outside_a_flow_naming_endpoint_field_and_name(target):
    Endpoint.objects.create(target=target, name="plain", url="/p/{{ seq() }}")
    Endpoint.objects.create(target=target, name="cart", url="/cart", headers={"X-T": "{{ token }}"})
    session = LoadTestSession.objects.create(session_name="s", target=target)
    with pytest.raises(ValidationError) as caught:
        build_plan(session)
    problems = caught.value.message_dict["endpoints"]
    assert problems == [
        "cart: the Header 'X-T' template uses the variable 'token', which only an earlier step "
        "of a flow can set; use the endpoint in a flow, or give it weight 0 in this session."
    ]
    session.endpoint_weights = {"cart": 0}
    session.save()
    assert [e.name for e in build_plan(session).endpoints] == ["plain"]


def test_build_plan_refuses_a_feed_column_without_a_feed(target):
    Endpoint.objects.create(target=target, name="login", url="/login", body="{{ feed.email }}")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    with pytest.raises(ValidationError) as caught:
        build_plan(session)
    assert caught.value.message_dict["endpoints"] == [
        "login: the Body template uses feed.email, but the target has no data feed."
    ]


def _plan(*endpoints: EndpointPlan, feed: FeedPlan | None = None) -> Plan:
    return Plan(endpoints=endpoints, request_interval_min=1, request_interval_max=2, feed=feed)


def test_template_problems_reads_the_plans_feed_and_flows():
    feed = FeedPlan(columns=("email", "name"), rows=(("a@x", "A"),))
    login = EndpointPlan("login", "POST", "http://h/{{ feed.email }}", 5, 1, {}, "{{ feed.pw }}")
    assert template_problems(_plan(login, feed=feed)) == [
        "login: the Body template uses feed.pw, but the target's data feed has no column 'pw' "
        "(it has email, name)."
    ]
    step = EndpointPlan(
        "f › 2. cart",  # noqa: RUF001  # the plan's step names
        "GET",
        "http://h/c/{{ cart_id }}",
        5,
        0,
        flow=0,
    )
    single = EndpointPlan("cart", "GET", "http://h/c/{{ cart_id }}", 5, 1)
    assert template_problems(_plan(step, feed=feed)) == []
    assert template_problems(_plan(single)) == [
        "cart: the URL template uses the variable 'cart_id', which only an earlier step of a "
        "flow can set; use the endpoint in a flow, or give it weight 0 in this session."
    ]
    legacy = EndpointPlan("old", "GET", "http://h/", 5, 1, {}, "{{ uuid()")
    assert template_problems(_plan(legacy))[0].startswith(
        "old: Body template, at character 0: the '{{' at character 0 is not closed"
    )
