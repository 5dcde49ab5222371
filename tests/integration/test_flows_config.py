"""Flows are configured the same way everywhere: the API, the admin and a catalog file go
through ``save_flow`` and refuse the same bad input with a message naming the field
(``steps[i].field``), with the catalog's permissions (admins edit, operators and viewers
read); their changes go into the configuration history."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.sessions.catalog.defaults import default_flows, load_default_flows
from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.cli.catalog import CatalogError, import_endpoints
from apps.sessions.lifecycle.editing import create_session
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import ConfigChange, Endpoint, Flow, FlowStep, LoadTestSession, Target

pytestmark = pytest.mark.django_db

LOGIN_EXTRACT = [{"name": "csrf_token", "json_path": "$.csrf_token"}]


@pytest.fixture
def target(settings):
    settings.ALLOWED_TARGET_HOSTS = ["127.0.0.1:5001"]
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    for name, url, method in (
        ("login", "/login", "POST"),
        ("cart-add", "/cart/items", "POST"),
        ("cart-view", "/cart", "GET"),
    ):
        Endpoint.objects.create(target=target, name=name, url=url, method=method)
    return target


def shop_body(target, **changes) -> dict:
    return {
        "target": target.pk,
        "name": "shop",
        "weight": 2,
        "description": "log in, add, view",
        "steps": [
            {"endpoint": "login", "think_time_s": 0.5, "extract": LOGIN_EXTRACT},
            {"endpoint": Endpoint.objects.get(name="cart-add").pk, "think_time_s": 0.5},
            {"endpoint": "cart-view"},
        ],
        **changes,
    }


def test_the_api_creates_a_flow_with_its_steps_by_endpoint_name_or_id(admin_api, target):
    created = admin_api.post("/api/flows/", shop_body(target), format="json")
    assert created.status_code == 201, created.json()
    data = created.json()
    assert (data["name"], data["weight"], data["target"]) == ("shop", 2.0, target.pk)
    assert [step["endpoint_name"] for step in data["steps"]] == ["login", "cart-add", "cart-view"]
    assert [step["position"] for step in data["steps"]] == [1, 2, 3]
    assert data["steps"][0]["extract"] == LOGIN_EXTRACT
    assert [step["think_time_s"] for step in data["steps"]] == [0.5, 0.5, 0.0]
    flow = Flow.objects.get(name="shop")
    assert list(flow.steps.values_list("endpoint__name", flat=True)) == [
        "login",
        "cart-add",
        "cart-view",
    ]
    listed = admin_api.get(f"/api/flows/?target={target.pk}").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["name"] for row in rows] == ["shop"]
    other = Target.objects.create(name="other", base_url="http://127.0.0.1:5001/other")
    listed = admin_api.get(f"/api/flows/?target={other.pk}").json()
    assert (listed["results"] if isinstance(listed, dict) else listed) == []


def test_an_update_writes_the_steps_whole_and_goes_into_the_history(admin_api, target):
    flow_id = admin_api.post("/api/flows/", shop_body(target), format="json").json()["id"]
    replaced = admin_api.put(
        f"/api/flows/{flow_id}/",
        shop_body(target, weight=0.5, steps=[{"endpoint": "cart-view", "think_time_s": 1}]),
        format="json",
    )
    assert replaced.status_code == 200, replaced.json()
    assert [step["endpoint_name"] for step in replaced.json()["steps"]] == ["cart-view"]
    assert FlowStep.objects.filter(flow_id=flow_id).count() == 1
    renamed = admin_api.patch(f"/api/flows/{flow_id}/", {"name": "browse"}, format="json")
    assert renamed.status_code == 200, renamed.json()
    assert [step["endpoint_name"] for step in renamed.json()["steps"]] == ["cart-view"]
    history = admin_api.get(f"/api/flows/{flow_id}/history/").json()
    rows = history["results"] if isinstance(history, dict) else history
    assert {row["field"] for row in rows} == {"weight", "steps", "name"}
    steps_change = next(row for row in rows if row["field"] == "steps")
    assert [step["endpoint_name"] for step in steps_change["old_value"]] == [
        "login",
        "cart-add",
        "cart-view",
    ]
    assert ConfigChange.objects.filter(object_type="flow", via="api").count() == 3


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "cart-view"}, "name", "has an endpoint named 'cart-view'"),
        ({"name": "a\nb"}, "name", "U+000A"),
        ({"name": "x" * 1_000_000}, "name", "100 characters"),
        ({"weight": -1}, "weight", "greater than or equal to 0"),
        ({"weight": 1e300}, "weight", "less than or equal to 1000000"),
        ({"weight": "lots"}, "weight", "A valid number is required"),
        ({"steps": []}, "steps", "1 to 50 steps"),
        ({"steps": "login"}, "steps", "A list of steps"),
        ({"steps": [{"endpoint": "cart-view"}] * 51}, "steps", "At most 50 steps"),
        ({"steps": [{"endpoint": "nope"}]}, "steps[0].endpoint", "has no endpoint 'nope'"),
        ({"steps": [{"endpoint": 10**30}]}, "steps[0].endpoint", "has no endpoint"),
        ({"steps": [{"endpoint": None}]}, "steps[0].endpoint", "The id or the name"),
        ({"steps": [{"endpoint": "cart-view", "wait": 1}]}, "steps[0].wait", "Unknown field"),
        ({"steps": ["cart-view"]}, "steps[0]", "An object with endpoint"),
        ({"steps": [{"endpoint": "login", "think_time_s": -0.5}]}, "steps[0].think_time_s",
         "greater than or equal to 0"),
        ({"steps": [{"endpoint": "login", "think_time_s": 4000}]}, "steps[0].think_time_s",
         "less than or equal to 3600"),
        ({"steps": [{"endpoint": "login", "think_time_s": "soon"}]}, "steps[0].think_time_s",
         "A number of seconds"),
        ({"steps": [{"endpoint": "cart-view"}, {"endpoint": "login", "extract": {"a": 1}}]},
         "steps[1].extract", "extract: a list"),
        ({"steps": [{"endpoint": "login", "extract": [{"name": "user_id", "header": "X"}]}]},
         "steps[0].extract", "reserved"),
        ({"steps": [{"endpoint": "login", "extract": [{"name": "9x", "header": "X"}]}]},
         "steps[0].extract", "extract[0].name: a variable name"),
        ({"steps": [{"endpoint": "login", "extract": [{"name": "t", "regex": "("}]}]},
         "steps[0].extract", "extract[0].regex: not a regular expression"),
        ({"steps": [{"endpoint": "login", "extract": [
            {"name": "t", "regex": "(?:(?:a{1000}){100}){11}"}]}]},
         "steps[0].extract", "extract[0].regex: its repetitions are too large"),
        ({"steps": [{"endpoint": "login", "extract": [{"name": "t", "json_path": "$.a"}] * 21}]},
         "steps[0].extract", "at most 20"),
    ],
)  # fmt: skip
def test_the_api_refuses_bad_flows_naming_the_field(admin_api, target, changes, field, message):
    response = admin_api.post("/api/flows/", shop_body(target, **changes), format="json")
    assert response.status_code == 400, response.content[:300]
    assert message in " ".join(response.json()[field]), response.json()
    assert not Flow.objects.exists()


def test_a_step_cannot_call_another_targets_endpoint(admin_api, target):
    other = Target.objects.create(name="other", base_url="http://127.0.0.1:5001/x")
    foreign = Endpoint.objects.create(target=other, name="foreign", url="/f")
    body = shop_body(target, steps=[{"endpoint": foreign.pk}])
    response = admin_api.post("/api/flows/", body, format="json")
    assert response.status_code == 400
    assert "has no endpoint" in " ".join(response.json()["steps[0].endpoint"])


def test_names_are_unique_among_a_targets_flows_and_endpoints(admin_api, target):
    assert admin_api.post("/api/flows/", shop_body(target), format="json").status_code == 201
    again = admin_api.post("/api/flows/", shop_body(target), format="json")
    assert again.status_code == 400
    assert "already has a flow named 'shop'" in " ".join(again.json()["name"])
    endpoint = admin_api.post(
        "/api/endpoints/", {"target": target.pk, "name": "shop", "url": "/s"}, format="json"
    )
    assert endpoint.status_code == 400
    assert "has a flow named 'shop'" in " ".join(endpoint.json()["name"])
    renamed = admin_api.patch(
        f"/api/endpoints/{Endpoint.objects.get(name='cart-view').pk}/",
        {"name": "shop"},
        format="json",
    )
    assert renamed.status_code == 400
    assert Endpoint.objects.filter(name="cart-view").exists()


def test_hostile_json_is_refused_without_a_500(admin_api, target):
    deep = "[" * 100_000 + "]" * 100_000
    body = json.dumps(shop_body(target))[:-1] + f', "extra": {deep}}}'
    response = admin_api.post("/api/flows/", body, content_type="application/json")
    assert response.status_code == 400
    nan = json.dumps(shop_body(target)).replace('"weight": 2', '"weight": NaN')
    response = admin_api.post("/api/flows/", nan, content_type="application/json")
    assert response.status_code == 400
    unicode_name = admin_api.post("/api/flows/", shop_body(target, name="買い物 🛒"), format="json")
    assert unicode_name.status_code == 201, unicode_name.json()
    assert not admin_api.get("/api/flows/?target=abc").status_code >= 500


def test_an_endpoint_a_flow_calls_cannot_be_deleted_alone(admin_api, target):
    admin_api.post("/api/flows/", shop_body(target), format="json")
    login = Endpoint.objects.get(name="login")
    response = admin_api.delete(f"/api/endpoints/{login.pk}/")
    assert response.status_code == 409
    assert "shop" in response.json()["detail"]
    flow = Flow.objects.get()
    assert admin_api.delete(f"/api/flows/{flow.pk}/").status_code == 204
    assert admin_api.delete(f"/api/endpoints/{login.pk}/").status_code == 204
    assert not FlowStep.objects.exists()


def test_operators_and_viewers_read_flows_but_only_admins_change_them(
    admin_api, api, viewer_api, target
):
    flow_id = admin_api.post("/api/flows/", shop_body(target), format="json").json()["id"]
    for client in (api, viewer_api):
        assert client.get("/api/flows/").status_code == 200
        assert client.get(f"/api/flows/{flow_id}/").json()["name"] == "shop"
        created = client.post("/api/flows/", shop_body(target, name="x"), format="json")
        assert created.status_code == 403
        changed = client.patch(f"/api/flows/{flow_id}/", {"weight": 9}, format="json")
        assert changed.status_code == 403
        assert client.delete(f"/api/flows/{flow_id}/").status_code == 403
    assert Flow.objects.get().weight == 2.0


def test_the_services_refuse_a_role_without_the_catalog_permission(operator, target):
    steps = [FlowStep(endpoint=Endpoint.objects.get(name="cart-view"))]
    with pytest.raises(PermissionDenied, match="add flows"):
        save_flow(Flow(target=target, name="f"), steps, user=operator)


# --- admin ------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, administrator):
    administrator.is_staff = True
    administrator.save()
    client.force_login(administrator)
    return client


def step_form(prefix: str, rows: list[dict]) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{index}-{key}"] = value
    return data


def test_the_admin_saves_a_flow_with_its_steps_and_refuses_bad_ones(admin_client, target):
    add = reverse("admin:loadtests_flow_add")
    assert admin_client.get(add).status_code == 200
    login, cart_view = Endpoint.objects.get(name="login"), Endpoint.objects.get(name="cart-view")
    flow_fields = {"target": target.pk, "name": "shop", "weight": "1", "description": ""}
    bad = step_form(
        "steps",
        [{"position": "1", "endpoint": login.pk, "think_time_s": "0", "extract": '[{"name": 1}]'}],
    )
    refused = admin_client.post(add, {**flow_fields, **bad})
    assert refused.status_code == 200
    assert "extract[0].name: a variable name" in refused.content.decode()
    assert not Flow.objects.exists()
    huge = [{"name": "t", "regex": "(?:(?:a{1000}){100}){11}"}]
    row = {"position": "1", "endpoint": login.pk, "think_time_s": "0", "extract": json.dumps(huge)}
    refused = admin_client.post(add, {**flow_fields, **step_form("steps", [row])})
    assert refused.status_code == 200
    assert "extract[0].regex: its repetitions are too large" in refused.content.decode()
    assert not Flow.objects.exists()
    none = admin_client.post(add, {**flow_fields, **step_form("steps", [])})
    assert none.status_code == 200
    assert "1 to 50 steps" in none.content.decode()
    good = step_form(
        "steps",
        [
            {"position": "2", "endpoint": cart_view.pk, "think_time_s": "0", "extract": "[]"},
            {"position": "1", "endpoint": login.pk, "think_time_s": "0.5",
             "extract": json.dumps(LOGIN_EXTRACT)},
        ],
    )  # fmt: skip
    saved = admin_client.post(add, {**flow_fields, **good})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    flow = Flow.objects.get()
    assert list(flow.steps.values_list("endpoint__name", "position")) == [
        ("login", 1),
        ("cart-view", 2),
    ]
    assert admin_client.get(reverse("admin:loadtests_flowstep_changelist")).status_code == 200


def test_the_admin_refuses_operators(client, operator, target):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    assert client.get(reverse("admin:loadtests_flow_add")).status_code == 403


# --- catalog files ----------------------------------------------------------------------------


def test_a_catalog_file_carries_flows_and_names_a_bad_step(tmp_path, target):
    path = tmp_path / "catalog.json"
    flow = {"name": "shop", "weight": 3, "steps": [
        {"endpoint": "login", "think_time_s": 0.5, "extract": LOGIN_EXTRACT},
        {"endpoint": "cart-view"},
    ]}  # fmt: skip
    document = {"target": {"base_url": target.base_url},
                "endpoints": [{"name": "cart-view", "url": "/cart"}], "flows": [flow]}  # fmt: skip
    path.write_text(json.dumps(document))
    report = import_endpoints(str(path))
    assert "1 flow(s) written, 1 in all" in report
    stored = Flow.objects.get(name="shop")
    assert stored.weight == 3
    assert list(stored.steps.values_list("endpoint__name", flat=True)) == ["login", "cart-view"]

    bad = {**flow, "steps": [{"endpoint": "login"}, {"endpoint": "gone"}]}
    path.write_text(json.dumps({**document, "flows": [bad]}))
    with pytest.raises(CatalogError) as caught:
        import_endpoints(str(path))
    assert "flows[0].steps[1].endpoint: The target 'shop' has no endpoint 'gone'" in str(
        caught.value
    )
    assert stored.steps.count() == 2  # all or nothing
    path.write_text(json.dumps({**document, "flows": [{**flow, "repeat": 2}]}))
    with pytest.raises(CatalogError, match=r"flows\[0\].repeat: Unknown field"):
        import_endpoints(str(path))
    # A file without flows is read as before.
    path.write_text(json.dumps({**document, "flows": None}))
    assert import_endpoints(str(path)).endswith("in all.")


def test_the_default_catalog_ships_the_shop_flow(target):
    flows = {item["name"]: item for item in default_flows()}
    assert [step["endpoint"] for step in flows["shop"]["steps"]] == [
        "login",
        "cart-add",
        "cart-view",
    ]
    assert flows["shop"]["steps"][0]["extract"] == LOGIN_EXTRACT
    assert load_default_flows(target) == 1
    shop = Flow.objects.get(target=target, name="shop")
    assert [(s.endpoint.name, s.think_time_s) for s in shop.steps.all()] == [
        ("login", 0.5),
        ("cart-add", 0.5),
        ("cart-view", 0.0),
    ]
    assert load_default_flows(target) == 0  # never twice
    bare = Target.objects.create(name="bare", base_url="http://127.0.0.1:5001/bare")
    assert load_default_flows(bare) == 0  # no login endpoint: no flow


# --- dashboard ----------------------------------------------------------------------------------


def test_the_dashboard_form_saves_through_the_services_and_shows_step_errors(
    client, administrator, target
):
    client.force_login(administrator)
    new = client.get(f"/flows/new/?target={target.pk}")
    assert new.status_code == 200
    form = {"target": target.pk, "name": "shop", "weight": "1", "description": ""}
    bad_steps = json.dumps([{"endpoint": "login"}, {"endpoint": "nope"}])
    refused = client.post("/flows/new/", {**form, "steps": bad_steps})
    assert refused.status_code == 400
    assert (
        "Step 2, endpoint: The target &#x27;shop&#x27; has no endpoint" in refused.content.decode()
    )
    for hostile in ("[" * 100_000, "not json", "x" * (2**20 + 1), '[{"endpoint": NaN}]'):
        response = client.post("/flows/new/", {**form, "steps": hostile})
        assert response.status_code == 400, hostile[:20]
    nan_weight = client.post("/flows/new/", {**form, "weight": "nan", "steps": "[]"})
    assert nan_weight.status_code == 400
    assert not Flow.objects.exists()
    steps = json.dumps([{"endpoint": "login", "extract": LOGIN_EXTRACT}, {"endpoint": "cart-view"}])
    saved = client.post("/flows/new/", {**form, "steps": steps})
    assert saved.status_code == 302
    flow = Flow.objects.get()
    assert list(flow.steps.values_list("endpoint__name", flat=True)) == ["login", "cart-view"]
    edit = client.get(f"/flows/{flow.pk}/")
    assert '"endpoint": "login"' in edit.content.decode()
    client.post(f"/flows/{flow.pk}/", {"name": "shop", "weight": "0", "steps": steps})
    assert Flow.objects.get().weight == 0
    listed = client.get("/flows/").content.decode()
    assert "csrf_token" in listed and 'data-flow="shop"' in listed
    assert ConfigChange.objects.filter(object_type="flow", via="page").exists()
    assert client.post(f"/flows/{flow.pk}/delete/").status_code == 302
    assert not Flow.objects.exists()


def test_the_dashboard_refuses_viewers_changes(client, viewer, target):
    client.force_login(viewer)
    listed = client.get("/flows/")
    assert listed.status_code == 200
    assert "New flow" not in listed.content.decode()
    assert client.get("/flows/new/").status_code == 403
    flow = save_flow(
        Flow(target=target, name="shop"), [FlowStep(endpoint=Endpoint.objects.get(name="login"))]
    )
    assert (
        client.post(f"/flows/{flow.pk}/", {"name": "x", "weight": "1", "steps": "[]"}).status_code
        == 403
    )
    assert client.post(f"/flows/{flow.pk}/delete/").status_code == 403
    assert Flow.objects.get().name == "shop"


# --- variables ----------------------------------------------------------------------------------


def test_a_step_uses_only_variables_an_earlier_step_extracts(admin_api, target):
    cart_add = Endpoint.objects.get(name="cart-add")
    cart_add.headers = {"X-CSRF-Token": "{{ csrf_token }}"}
    cart_add.body = '{"product_id": {{ random_int(1, 5000) }}, "user": "{{ user_id }}"}'
    cart_add.full_clean()
    cart_add.save()
    unset = shop_body(target, steps=[{"endpoint": "login"}, {"endpoint": "cart-add"}])
    response = admin_api.post("/api/flows/", unset, format="json")
    assert response.status_code == 400
    assert (
        "Flow 'shop', step 2 (cart-add): its templates use csrf_token, which no earlier step "
        "extracts" in " ".join(response.json()["steps[1].endpoint"])
    )
    # Set by the same step is too late: it is extracted from that step's answer.
    same_step = shop_body(
        target, steps=[{"endpoint": "cart-add", "extract": LOGIN_EXTRACT}, {"endpoint": "login"}]
    )
    response = admin_api.post("/api/flows/", same_step, format="json")
    assert "step 1 (cart-add)" in " ".join(response.json()["steps[0].endpoint"])
    assert admin_api.post("/api/flows/", shop_body(target), format="json").status_code == 201

    # An endpoint changed after the flow was saved: the session's plan is refused, by name.
    login = Endpoint.objects.get(name="login")
    login.url = "/login?next={{ cart_id }}"
    login.full_clean()
    login.save()
    session = create_session(
        LoadTestSession(session_name="s", target=target, endpoint_weights={"login": 0})
    )
    with pytest.raises(ValidationError) as caught:
        build_plan(session)
    assert "Flow 'shop', step 1 (login): its templates use cart_id" in " ".join(
        caught.value.message_dict["flows"]
    )


def test_deleting_a_target_deletes_its_flows_and_the_admin_says_what_blocks_an_endpoint(
    admin_api, admin_client, target
):
    admin_api.post("/api/flows/", shop_body(target), format="json")
    login = Endpoint.objects.get(name="login")
    page = admin_client.get(reverse("admin:loadtests_endpoint_delete", args=[login.pk]))
    assert page.status_code == 200
    assert "Cannot delete endpoint" in page.content.decode()
    assert "flow step" in page.content.decode()  # what holds it
    refused = admin_client.post(
        reverse("admin:loadtests_endpoint_delete", args=[login.pk]), {"post": "yes"}
    )
    assert refused.status_code in (200, 403)
    assert Endpoint.objects.filter(pk=login.pk).exists()
    assert admin_api.delete(f"/api/targets/{target.pk}/").status_code == 204
    assert not Flow.objects.exists() and not FlowStep.objects.exists()


@pytest.mark.integration
def test_the_shop_flow_migration_adds_the_flow_to_a_target_with_the_demo_endpoints(
    tmp_path, redis_url
):
    root = Path(__file__).resolve().parents[2]
    database = tmp_path / "db.sqlite3"
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=f"sqlite:///{database}", DATA_DIR=str(tmp_path), REDIS_URL=redis_url,
               DEBUG="False", SECRET_KEY="migrations-test-key")  # fmt: skip

    def migrate(to: str) -> None:
        command = [sys.executable, "manage.py", "migrate", "loadtests", to]
        result = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    migrate("0019_flowstats")
    now = "2026-12-01 00:00:00"
    with sqlite3.connect(database) as connection:
        for target_id, name in ((1, "demo"), (2, "partial")):
            connection.execute(
                "INSERT INTO loadtests_target (id, name, base_url, description, created_at, "
                "updated_at) VALUES (?, ?, ?, '', ?, ?)",
                (target_id, name, f"http://127.0.0.1:5001/{name}", now, now),
            )
        endpoints = [(1, "login"), (1, "cart-add"), (1, "cart-view"), (2, "login")]
        for target_id, name in endpoints:
            connection.execute(
                "INSERT INTO loadtests_endpoint (target_id, name, url, method, weight, timeout_s, "
                "description, headers, body, expected_statuses, checks, created_at, updated_at) "
                "VALUES (?, ?, '/x', 'GET', 0, 30, '', '{}', '', '200-399', '[]', ?, ?)",
                (target_id, name, now, now),
            )
    migrate("0020_shop_flow")
    with sqlite3.connect(database) as connection:
        flows = connection.execute("SELECT target_id, name, weight FROM loadtests_flow").fetchall()
        steps = connection.execute(
            "SELECT s.position, e.name, s.think_time_s, s.extract FROM loadtests_flowstep s "
            "JOIN loadtests_endpoint e ON e.id = s.endpoint_id ORDER BY s.position"
        ).fetchall()
    assert flows == [(1, "shop", 1.0)]  # the target without every endpoint gets none
    assert [(p, n, t) for p, n, t, _ in steps] == [
        (1, "login", 0.5),
        (2, "cart-add", 0.5),
        (3, "cart-view", 0.0),
    ]
    assert json.loads(steps[0][3]) == LOGIN_EXTRACT


def test_the_flows_page_reads_any_target_parameter(client, administrator, target):
    client.force_login(administrator)
    for raw in ("abc", "9" * 40, "-1", "\u0661", str(target.pk)):
        assert client.get(f"/flows/?target={raw}").status_code == 200, raw
        assert client.get(f"/flows/new/?target={raw}").status_code == 200, raw
    form = {"target": "9" * 40, "name": "shop", "weight": "1", "steps": "[]"}
    refused = client.post("/flows/new/", form)
    assert refused.status_code == 400
    assert "Choose a target." in refused.content.decode()
