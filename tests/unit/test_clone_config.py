"""Clone's ``config``: a run whose users and weights changed while it ran is cloned as
configured at its start (the default) or as it ended, read back from its configuration
history; any other value is a 400 naming the allowed ones, from the API and the page alike."""

from datetime import timedelta

import pytest

from apps.sessions.models import ConfigChange, Endpoint, LoadTestSession, Target
from apps.sessions.results.configuration import run_configuration

from ..support.forms import browser_for
from ..support.sessions import finished_session

pytestmark = pytest.mark.django_db

ALLOWED = "choose 'start' (users and weights as configured at the start) or 'end' (as it ended)."


@pytest.fixture
def target(db):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="ping", url="/ping", weight=1.0)
    Endpoint.objects.create(target=target, name="pong", url="/pong", weight=1.0)
    return target


def live_change(session, field, old, new, after_start_s=5):
    change = ConfigChange.objects.create(object_type="session", object_id=session.pk,
                                         object_repr=str(session), field=field, old_value=old,
                                         new_value=new, via="api")  # fmt: skip
    ConfigChange.objects.filter(pk=change.pk).update(
        changed_at=session.start_time + timedelta(seconds=after_start_s)
    )


@pytest.fixture
def changed_run(target):
    """Started with 20 users and pong at 3, ended with 40 users and pong left out (the row
    holds the end; the history, the start)."""
    session = finished_session(target, "changed", endpoints={"ping": ([5.0] * 50, {})})
    LoadTestSession.objects.filter(pk=session.pk).update(
        concurrent_users=40, endpoint_weights={"pong": 0}
    )
    live_change(session, "concurrent_users", 20, 30, after_start_s=2)
    live_change(session, "concurrent_users", 30, 40, after_start_s=4)
    live_change(session, "endpoint_weights", {"pong": 3}, {"pong": 0})
    session.refresh_from_db()
    return session


def test_the_start_is_read_from_the_first_live_change(changed_run):
    config = run_configuration(changed_run)
    assert (config.users_start, config.users_end) == (20, 40)
    assert config.overrides_start == {"pong": 3} and config.overrides_end == {"pong": 0}
    assert config.mix_start == {"ping": 1.0, "pong": 3.0}
    assert config.changed_live == ("users", "weights")


def test_a_change_while_pending_is_not_the_start(target):
    session = finished_session(target)
    live_change(session, "concurrent_users", 5, 10, after_start_s=-60)  # before the start
    assert run_configuration(session).users_start == session.concurrent_users


def test_the_api_clones_the_start_by_default_or_the_end(changed_run, api):
    url = f"/api/sessions/{changed_run.pk}/clone/"
    default, start, end = (
        api.post(url),
        api.post(f"{url}?config=start"),
        api.post(url, {"config": "end"}, format="json"),
    )
    assert [a.status_code for a in (default, start, end)] == [201, 201, 201]
    assert [a.json()["concurrent_users"] for a in (default, start, end)] == [20, 20, 40]
    assert start.json()["endpoint_weights"] == {"pong": 3}
    assert end.json()["endpoint_weights"] == {"pong": 0}
    # Everything else is copied alike.
    assert start.json()["session_name"] == end.json()["session_name"] == "changed (copy)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"config": "middle"}, f"'middle' is not a choice: {ALLOWED}"),
        ({"config": ""}, f"'' is not a choice: {ALLOWED}"),
        ({"config": "START"}, f"'START' is not a choice: {ALLOWED}"),
        ({"config": " start"}, f"' start' is not a choice: {ALLOWED}"),
        ({"config": "start\x00"}, f"Not a choice: {ALLOWED}"),
        ({"config": "é" * 10_000}, f"'{'é' * 19}…' is not a choice: {ALLOWED}"),
        ({"config": 1}, f"Must be a text, not int: {ALLOWED}"),
        ({"config": True}, f"Must be a text, not bool: {ALLOWED}"),
        ({"config": ["start"]}, f"Must be a text, not list: {ALLOWED}"),
        ({"config": {"start": 1}}, f"Must be a text, not dict: {ALLOWED}"),
    ],
)
def test_any_other_config_is_a_400_naming_the_choices(changed_run, api, body, message):
    before = LoadTestSession.objects.count()
    answer = api.post(f"/api/sessions/{changed_run.pk}/clone/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json() == {"config": [message]}
    assert LoadTestSession.objects.count() == before


def test_a_bad_query_a_list_body_or_two_disagreeing_values_are_400(changed_run, api):
    url = f"/api/sessions/{changed_run.pk}/clone/"
    query = api.post(f"{url}?config=%E2%80%8Bstart")
    assert query.status_code == 400  # a zero-width space: not echoed
    assert query.json() == {"config": [f"Not a choice: {ALLOWED}"]}
    listed = api.post(url, ["start"], format="json")
    assert listed.status_code == 400
    assert listed.json() == {"non_field_errors": ["Send a JSON object, not list."]}
    both = api.post(f"{url}?config=end", {"config": "start"}, format="json")
    assert both.status_code == 400 and "Given twice" in both.json()["config"][0]
    assert api.post(f"{url}?config=end", {"config": "end"}, format="json").status_code == 201
    assert api.post(url, {"config": None}, format="json").json()["concurrent_users"] == 20


def test_a_viewer_may_not_clone_whatever_the_config(changed_run, viewer_api):
    for body in ({}, {"config": "nonsense"}):
        answer = viewer_api.post(f"/api/sessions/{changed_run.pk}/clone/", body, format="json")
        assert answer.status_code == 403


def test_the_page_offers_one_plain_clone_when_nothing_changed(target, operator, viewer):
    plain = finished_session(target, "plain")
    page = browser_for(operator).get(f"/sessions/{plain.pk}/").content.decode()
    assert 'data-testid="clone"' in page and 'data-testid="clone-start"' not in page
    form = browser_for(operator).get(f"/sessions/new/?clone={plain.pk}").content.decode()
    assert 'data-testid="clone-config"' not in form  # one configuration: nothing to say
    assert "Clone" not in browser_for(viewer).get(f"/sessions/{plain.pk}/").content.decode()


def test_the_page_refuses_a_bad_config_with_400(changed_run, operator):
    page = browser_for(operator).get(f"/sessions/new/?clone={changed_run.pk}&config=both")
    assert page.status_code == 400
    assert "config: &#x27;both&#x27; is not a choice" in page.content.decode()


def test_a_history_row_that_cannot_say_falls_back_to_the_row(target, viewer_api):
    """Hand-edited or old history rows (a text, a list) never make the comparison a 500."""
    session = finished_session(target, "odd")
    live_change(session, "concurrent_users", "many", 10)
    live_change(session, "endpoint_weights", ["pong"], {"pong": 0})
    config = run_configuration(session)
    assert config.users_start == session.concurrent_users and config.overrides_start == {}
    other = finished_session(target, "other")
    answer = viewer_api.get(f"/api/sessions/compare/?ids={other.pk},{session.pk}")
    assert answer.status_code == 200, answer.content
