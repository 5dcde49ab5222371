"""The plan is a frozen, versioned dataclass of the engine: built by the control plane, stored
as JSON in the session's row and in Redis, and read back the same everywhere."""

import json
from dataclasses import FrozenInstanceError, fields

import pytest
from django.conf import settings

from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import Endpoint, LoadTestSession, Target
from apps.workers.control import SessionKeys, publish_session
from apps.workers.plan import (
    PLAN_VERSION,
    EndpointPlan,
    Plan,
    PlanVersionError,
    plan_signing_key,
    read_trusted_plan,
)

PLAN = Plan(
    endpoints=(
        EndpointPlan(name="a", method="POST", url="http://127.0.0.1:9/a", timeout_s=2.5,
                     weight=3.0, headers={"X-Key": "k1234"}, body='{"q": 1}', endpoint_id=7),
        EndpointPlan(name="b", method="GET", url="http://127.0.0.1:9/b", timeout_s=30,
                     weight=1.0),
    ),
    request_interval_min=0.5,
    request_interval_max=2.0,
    target_rps=40.0,
    ramp_up_s=10.0,
    duration_s=90.0,
    request_log=True,
    session_id=12,
)  # fmt: skip


def test_a_plan_survives_json_both_ways():
    assert Plan.from_json(json.loads(json.dumps(PLAN.to_json()))) == PLAN


def test_to_json_writes_every_field_and_the_version():
    data = PLAN.to_json()
    assert set(data) == {field.name for field in fields(Plan)}
    assert set(data["endpoints"][0]) == {field.name for field in fields(EndpointPlan)}
    assert data["version"] == PLAN_VERSION


def test_a_plan_is_frozen():
    with pytest.raises(FrozenInstanceError):
        PLAN.ramp_up_s = 0.0


def test_a_plan_of_an_unknown_version_is_refused_with_what_to_do():
    with pytest.raises(PlanVersionError, match=r"version 99.*same release"):
        Plan.from_json({**PLAN.to_json(), "version": 99})


def test_a_plan_written_before_versions_is_read_with_todays_names():
    """As sessions started by the previous release hold it, in the database and in Redis."""
    unversioned = {
        "session_id": 3,
        "endpoints": [{"id": 5, "name": "a", "method": "GET", "url": "http://127.0.0.1:9/a",
                       "timeout_s": 30.0, "weight": 1.0, "headers": {}, "body": ""}],
        "request_interval_min": 1.0,
        "request_interval_max": 5.0,
        "target_rps": None,
        "ramp_up_seconds": 4.0,
        "duration_s": 60.0,
        "request_log": True,
    }  # fmt: skip
    plan = Plan.from_json(unversioned)
    assert plan.ramp_up_s == 4.0
    assert plan.endpoints[0].endpoint_id == 5
    assert plan.version == PLAN_VERSION


@pytest.mark.django_db
def test_the_control_plane_builds_it_and_stores_it_in_the_row_and_redis(
    redis_client, forget_redis_sessions
):
    target = Target.objects.create(name="plan", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="slow", url="/slow", timeout_s=2.0, weight=2.0)
    Endpoint.objects.create(target=target, name="off", url="/off")
    session = LoadTestSession.objects.create(
        session_name="plan", target=target, ramp_up_seconds=3.0, duration_minutes="0.5",
        endpoint_weights={"off": 0}, target_rps=20.0,
    )  # fmt: skip
    plan = build_plan(session)
    (slow,) = plan.endpoints  # a weight of 0 leaves "off" out
    assert slow == EndpointPlan(name="slow", method="GET", url="http://127.0.0.1:9/slow",
                                timeout_s=2.0, weight=2.0, headers={}, body="",
                                endpoint_id=slow.endpoint_id)  # fmt: skip
    assert (plan.ramp_up_s, plan.duration_s, plan.open_model) == (3.0, 30.0, True)
    LoadTestSession.objects.filter(pk=session.pk).update(plan=plan.to_json())
    session.refresh_from_db()
    assert session.read_plan() == plan
    publish_session(redis_client, session.pk, plan)
    stored = redis_client.get(SessionKeys(session.pk).plan)
    assert (
        read_trusted_plan(
            stored, plan_signing_key(settings.SECRET_KEY), settings.ALLOWED_TARGET_HOSTS
        )
        == plan
    )
