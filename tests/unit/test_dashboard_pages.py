"""The dashboard's pages as Django renders them: who may see what, the sign-in, and the New
session form judged by the API's own rules (real database; no engine needed)."""

import pytest

from apps.sessions.models import Endpoint, LoadTestSession, Target

from ..support.forms import browser_for, form_body
from ..support.users import persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def target():
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="fast", url="/fast", weight=3)
    Endpoint.objects.create(target=target, name="slow", url="/slow", weight=1)
    return target


@pytest.fixture
def session(target, operator):
    return LoadTestSession.objects.create(
        session_name="nightly", target=target, created_by=operator
    )


@pytest.mark.parametrize("path", ["/", "/sessions/new/", "/workers/", "/sessions/1/"])
def test_anonymous_is_sent_to_the_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_signs_in_with_its_password(client, role):
    persona(f"user-{role}", role)
    response = client.post(
        "/accounts/login/", {"username": f"user-{role}", "password": f"user-{role}-pw-42"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_password_is_refused_and_counted_by_the_lockout(client, operator, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        response = client.post("/accounts/login/", {"username": "olivia", "password": "nope"})
    assert response.status_code == 429  # django-axes saw the request: locked out
    right = client.post("/accounts/login/", {"username": "olivia", "password": "olivia-pw-42"})
    assert right.status_code == 429


def test_viewer_sees_the_session_but_no_controls(viewer, session):
    page = browser_for(viewer).get(f"/sessions/{session.pk}/").content.decode()
    assert 'data-testid="session-status"' in page and "nightly" in page
    for control in (">Start<", ">Stop<", ">Apply users<", ">Clone<", ">Emergency stop<"):
        assert control not in page


def test_operator_sees_start_clone_and_users_but_not_emergency_stop(operator, session):
    page = browser_for(operator).get(f"/sessions/{session.pk}/").content.decode()
    for control in (">Start<", ">Clone<", ">Apply users<", ">Apply weights<"):
        assert control in page
    assert ">Emergency stop<" not in page


def test_admin_sees_emergency_stop_and_the_admin_link(administrator, session):
    administrator.is_staff = True
    administrator.save()
    page = browser_for(administrator).get("/").content.decode()
    assert ">Emergency stop<" in page and 'href="/admin/"' in page


def test_viewer_cannot_open_the_new_session_form(viewer, target):
    response = browser_for(viewer).get("/sessions/new/")
    assert response.status_code == 403
    assert "does not allow you to create sessions" in response.content.decode()


def test_viewer_posting_the_form_anyway_stores_nothing(viewer, target):
    body = {"session_name": "x", "target": target.pk}
    response = browser_for(viewer).post("/sessions/new/", body)
    assert response.status_code == 403
    assert not LoadTestSession.objects.exists()


def test_the_form_shows_one_weight_input_per_endpoint_and_the_seed_defaults(operator, target):
    page = browser_for(operator).get(f"/sessions/new/?target={target.pk}").content.decode()
    for endpoint in target.endpoints.all():
        assert f'name="weight_{endpoint.pk}"' in page
    assert 'name="concurrent_users"' in page and 'value="10"' in page  # the seed's default


def test_saving_the_form_creates_the_session_with_its_weights(operator, target):
    slow = target.endpoints.get(name="slow")
    body = form_body(target, **{f"weight_{slow.pk}": "5"})
    response = browser_for(operator).post("/sessions/new/", body)
    session = LoadTestSession.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sessions/{session.pk}/"
    assert session.endpoint_weights == {"fast": 3.0, "slow": 5.0}
    assert session.created_by == operator and session.status == "pending"
    assert session.target_rps is None and session.request_interval_min == 0.5


def test_the_open_model_stores_the_rate(operator, target):
    body = form_body(target, model="open", target_rps="20")
    browser_for(operator).post("/sessions/new/", body)
    assert LoadTestSession.objects.get().target_rps == 20


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("concurrent_users", "-3", "concurrent_users"),
        ("concurrent_users", "ten", "A valid integer is required."),
        ("duration_minutes", "-1", "Must be 0 (run until stopped) or a positive number."),
        ("request_interval_min", "9", "Must not exceed request_interval_max"),
        ("ramp_up_seconds", "nan", "ramp_up_seconds"),
        ("session_name", "a\nb", "session_name"),
    ],
)
def test_hostile_values_get_the_apis_message_next_to_the_field_and_store_nothing(
    operator, api, target, field, value, message
):
    body = form_body(target, **{field: value})
    response = browser_for(operator).post("/sessions/new/", body)
    assert response.status_code == 400
    assert not LoadTestSession.objects.exists()
    # The API says the same about the same value (one source of truth).
    api_body = {k: v for k, v in body.items() if not k.startswith(("weight_", "model"))}
    api_body.update(target_rps=None, enable_logging=True)
    api_errors = api.post("/api/sessions/", api_body, format="json").json()
    page = response.content.decode()
    for api_message in api_errors[field]:
        assert str(api_message).replace("'", "&#x27;") in page
    assert f'id="id_{field}"' in page


@pytest.mark.parametrize("field", ["concurrent_users", "duration_minutes", "request_interval_min"])
def test_an_emptied_number_is_an_error_not_a_default(operator, target, field):
    """Browsers empty a number input they cannot read (NaN, 1e400): never a silent default."""
    response = browser_for(operator).post("/sessions/new/", form_body(target, **{field: ""}))
    assert response.status_code == 400
    assert "Enter a number." in response.content.decode()
    assert not LoadTestSession.objects.exists()


def test_a_bad_weight_is_named_next_to_its_input(operator, target):
    fast = target.endpoints.get(name="fast")
    response = browser_for(operator).post(
        "/sessions/new/", form_body(target, **{f"weight_{fast.pk}": "-1"})
    )
    assert response.status_code == 400
    assert "The weight of &#x27;fast&#x27; must be from 0 to" in response.content.decode()
    assert not LoadTestSession.objects.exists()


def test_all_weights_zero_is_refused(operator, target):
    zeros = {f"weight_{e.pk}": "0" for e in target.endpoints.all()}
    response = browser_for(operator).post("/sessions/new/", form_body(target, **zeros))
    assert response.status_code == 400
    assert "At least one endpoint needs a positive weight" in response.content.decode()


def test_clone_prefills_the_form(operator, target):
    source = LoadTestSession.objects.create(
        session_name="base", target=target, concurrent_users=7, target_rps=12.5,
        endpoint_weights={"slow": 4},
    )  # fmt: skip
    page = browser_for(operator).get(f"/sessions/new/?clone={source.pk}").content.decode()
    slow = target.endpoints.get(name="slow")
    assert 'value="base (copy)"' in page and 'value="7"' in page and 'value="12.5"' in page
    assert f'name="weight_{slow.pk}"' in page and 'value="4"' in page
    assert 'id="model-open" value="open" checked' in page


def test_workers_and_overview_render_for_a_viewer(viewer, session):
    client = browser_for(viewer)
    assert "Workers" in client.get("/workers/").content.decode()
    overview = client.get("/").content.decode()
    assert "nightly" in overview and ">New session<" not in overview


def test_favicon_is_an_empty_answer_not_a_404(client):
    """The admin's pages name no icon, so browsers ask for /favicon.ico (seen as a console 404
    in a browser pass over the containers)."""
    response = client.get("/favicon.ico")
    assert response.status_code == 204
    assert response.content == b""


def test_the_form_stores_tags_refuses_bad_ones_beside_the_field_and_clone_prefills_them(
    operator, target
):
    client = browser_for(operator)
    refused = client.post("/sessions/new/", form_body(target, tags="nightly, two words"))
    assert refused.status_code == 400
    page = refused.content.decode()
    assert 'id="err_tags"' in page and "letters and digits" in page
    assert not LoadTestSession.objects.exists()
    saved = client.post("/sessions/new/", form_body(target, tags=" Nightly, release-2.4 "))
    assert saved.status_code == 302
    session = LoadTestSession.objects.get()
    assert session.tags == ["nightly", "release-2.4"]
    clone = client.get(f"/sessions/new/?clone={session.pk}").content.decode()
    assert 'value="nightly, release-2.4"' in clone


def test_the_sessions_page_filters_and_refuses_a_bad_filter_by_name(viewer, session):
    client = browser_for(viewer)
    row = f'data-session="{session.pk}"'
    listed = client.get("/sessions/", {"status": "pending"})
    assert listed.status_code == 200 and row in listed.content.decode()
    assert row not in client.get("/sessions/", {"status": "failed"}).content.decode()
    bad = client.get("/sessions/", {"started_before": "soon"})
    assert bad.status_code == 400 and "started_before" in bad.content.decode()
    assert client.get("/sessions/", {"page": "x"}).status_code == 200  # the first page
    assert 'href="/sessions/"' in client.get("/").content.decode()  # linked from the overview
