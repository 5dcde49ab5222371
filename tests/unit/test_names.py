"""One name per thing, one home per number: the published names (``timeout`` in the API and
the catalog file, ``ramp_up_seconds``) are mapped at the edge once, and the LoadTestConfig
rules run through one call path from the model and from the API."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.sessions.catalog.defaults import (
    DEFAULT_CATALOG,
    default_catalog_weights,
    load_default_catalog,
)
from apps.sessions.lifecycle.transitions import MONITOR_TICKS_MIN_S, monitor_ticks_s
from apps.sessions.models import LoadTestSession, Target
from apps.workers.control import KEY_PREFIX

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_the_catalog_files_timeout_is_the_endpoints_timeout_s():
    target = Target.objects.create(name="catalog", base_url="http://127.0.0.1:5001")
    assert load_default_catalog(target) > 0
    in_file = {item["name"]: item for item in json.loads(DEFAULT_CATALOG.read_text())}
    for endpoint in target.endpoints.all():
        assert endpoint.timeout_s == in_file[endpoint.name]["timeout"]
        assert endpoint.weight == in_file[endpoint.name]["weight"]
    assert default_catalog_weights() == {name: item["weight"] for name, item in in_file.items()}


@pytest.mark.django_db
def test_the_model_and_the_api_refuse_a_config_with_the_same_words(api):
    target = Target.objects.create(name="rules", base_url="http://127.0.0.1:9")
    target.endpoints.create(name="a", url="/a")
    bad = {"ramp_up_seconds": -1.0, "request_interval_min": 9.0, "request_interval_max": 1.0}
    with pytest.raises(ValidationError) as refused:
        LoadTestSession(session_name="x", target=target, **bad).full_clean()
    response = api.post(
        "/api/sessions/", {"session_name": "x", "target": target.pk, **bad}, format="json"
    )
    assert response.status_code == 400
    for field in ("ramp_up_seconds", "request_interval_min"):
        assert response.json()[field] == refused.value.message_dict[field]


def test_monitor_timings_have_a_floor(settings):
    settings.MONITOR_INTERVAL_S = 0.5
    assert monitor_ticks_s(5) == MONITOR_TICKS_MIN_S
    settings.MONITOR_INTERVAL_S = 2.0
    assert monitor_ticks_s(5) == 10.0


def test_tests_name_redis_keys_through_session_keys():
    """A key typed by hand goes stale when the key schema changes; SessionKeys does not."""
    typed = KEY_PREFIX + ":s:"
    assert [path.name for path in TESTS.rglob("*.py") if typed in path.read_text()] == []
