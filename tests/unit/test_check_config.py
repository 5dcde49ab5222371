"""Expected statuses and checks are configured the same way everywhere: the API, the admin
and the catalog file refuse the same bad values with a message naming the field (and the
item or check), store the statuses normalised, and the plan carries them to the engine."""

import json

import pytest
from django.urls import reverse

from apps.sessions.catalog.defaults import default_catalog, load_default_catalog
from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import Endpoint, LoadTestSession, Target
from apps.workers.checks import normalise_statuses

pytestmark = pytest.mark.django_db

GOOD_CHECKS = [
    {"name": "says ok", "type": "json_path_equals", "path": "$.status", "value": "ok"},
    {"type": "max_ms", "value": 500},
]


@pytest.fixture
def target(settings):
    settings.ALLOWED_TARGET_HOSTS = ["127.0.0.1:5001"]
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


def test_the_api_stores_statuses_normalised_and_checks_as_given(admin_api, target):
    created = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "e", "url": "/e", "expected_statuses": "200-299, 300-399,500",
         "checks": GOOD_CHECKS},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    assert created.json()["expected_statuses"] == "200-399,500"
    assert created.json()["checks"] == GOOD_CHECKS
    endpoint = Endpoint.objects.get(name="e")
    assert endpoint.expected_statuses == "200-399,500"
    default = admin_api.post(
        "/api/endpoints/", {"target": target.pk, "name": "d", "url": "/d"}, format="json"
    ).json()
    assert (default["expected_statuses"], default["checks"]) == ("200-399", [])

    session = LoadTestSession.objects.create(session_name="s", target=target)
    plan_endpoint = {e.name: e for e in build_plan(session).endpoints}["e"]
    assert plan_endpoint.expected_statuses == "200-399,500"
    assert list(plan_endpoint.checks) == GOOD_CHECKS


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expected_statuses", "200,abc", "Item 2 ('abc', at character 5)"),
        ("expected_statuses", "404,200", "ascending order"),
        ("expected_statuses", "700", "from 100 to 599"),
        ("checks", [{"type": "regex", "value": "x"}], "checks[0].type: one of body_contains"),
        ("checks", [GOOD_CHECKS[1], {"type": "json_path_exists", "path": "$.a[*]"}],
         "checks[1].path: Unexpected '[*]'"),
        ("checks", [{"type": "max_ms", "value": -1}], "checks[0].value: from more than 0"),
        ("checks", [{"type": "header_present"}], "checks[0].header: required"),
    ],
)  # fmt: skip
def test_the_api_refuses_bad_values_with_a_400_naming_field_and_position(
    admin_api, target, field, value, message
):
    response = admin_api.post(
        "/api/endpoints/",
        {"target": target.pk, "name": "e", "url": "/e", field: value},
        format="json",
    )
    assert response.status_code == 400
    assert message in " ".join(response.json()[field]), response.json()
    assert not Endpoint.objects.exists()


def test_only_admins_change_checks(api, viewer_api, target):
    endpoint = Endpoint.objects.create(target=target, name="e", url="/e")
    for client in (api, viewer_api):
        response = client.patch(
            f"/api/endpoints/{endpoint.pk}/", {"expected_statuses": "500"}, format="json"
        )
        assert response.status_code == 403
    assert Endpoint.objects.get(pk=endpoint.pk).expected_statuses == "200-399"


def test_a_change_of_checks_goes_into_the_history(admin_api, target):
    endpoint = Endpoint.objects.create(target=target, name="e", url="/e")
    response = admin_api.patch(
        f"/api/endpoints/{endpoint.pk}/",
        {"expected_statuses": "200,404", "checks": GOOD_CHECKS},
        format="json",
    )
    assert response.status_code == 200, response.json()
    history = admin_api.get(f"/api/endpoints/{endpoint.pk}/history/").json()
    rows = history["results"] if isinstance(history, dict) else history
    assert {row["field"] for row in rows} >= {"expected_statuses", "checks"}


def test_the_admin_stores_statuses_normalised_and_names_a_bad_check(superuser_client, target):
    form = {"target": target.pk, "name": "e", "url": "/e", "method": "GET", "weight": 1,
            "timeout_s": 5, "description": "", "headers": "{}", "body": "",
            "expected_statuses": "500, 503", "checks": json.dumps(GOOD_CHECKS)}  # fmt: skip
    refused = superuser_client.post(
        reverse("admin:loadtests_endpoint_add"), {**form, "checks": '[{"type": "max_ms"}]'}
    )
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "checks[0].value: required by a max_ms check" in " ".join(errors["checks"])
    saved = superuser_client.post(reverse("admin:loadtests_endpoint_add"), form)
    assert saved.status_code == 302
    endpoint = Endpoint.objects.get(name="e")
    assert (endpoint.expected_statuses, endpoint.checks) == ("500,503", GOOD_CHECKS)


def test_a_catalog_file_carries_checks_and_names_a_bad_one(tmp_path, target):
    path = tmp_path / "catalog.json"
    entry = {"name": "e", "url": "/e", "expected_statuses": "200,404", "checks": GOOD_CHECKS}
    path.write_text(json.dumps({"target": {"base_url": target.base_url}, "endpoints": [entry]}))
    import_endpoints(str(path))
    endpoint = Endpoint.objects.get(name="e")
    assert (endpoint.expected_statuses, endpoint.checks) == ("200,404", GOOD_CHECKS)

    bad = {**entry, "checks": [{"type": "json_path_equals", "path": "$.a", "value": "x"},
                               {"type": "body_contains", "value": ""}]}  # fmt: skip
    path.write_text(json.dumps({"target": {"base_url": target.base_url}, "endpoints": [bad]}))
    with pytest.raises(CatalogError, match=None) as caught:
        import_endpoints(str(path))
    assert "endpoints[0].checks: checks[1].value: a non-empty string" in str(caught.value)
    assert Endpoint.objects.get(name="e").checks == GOOD_CHECKS


def test_the_default_catalog_expects_the_demo_error_statuses():
    catalog = {entry["name"]: entry for entry in default_catalog()}
    assert catalog["error"]["expected_statuses"] == "200,400,404,500,503"
    # As stored: already normalised.
    assert normalise_statuses(catalog["error"]["expected_statuses"]) == "200,400,404,500,503"


@pytest.mark.django_db
def test_every_default_catalog_endpoint_passes_the_models_checks():
    """The catalog file's endpoints (the login + cart flow's steps with their headers, bodies,
    statuses and checks among them) are what the admin and the API would accept."""
    target = Target.objects.create(name="demo", base_url="http://127.0.0.1:5001")
    for fields in default_catalog():
        Endpoint(target=target, **fields).full_clean()
    load_default_catalog(target)
    steps = {e.name: e for e in target.endpoints.filter(weight=0)}
    assert set(steps) == {"login", "cart-add", "cart-view"}
    assert steps["cart-add"].expected_statuses == "201"
    assert steps["cart-add"].headers["X-CSRF-Token"] == "{{ csrf_token }}"
