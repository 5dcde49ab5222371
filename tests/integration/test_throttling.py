"""API rate limits: counted in the shared Redis cache, answered with 429 and Retry-After."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


def test_a_user_over_the_rate_gets_429_with_retry_after(viewer_api, settings):
    settings.API_USER_RATE = "5/minute"
    statuses = [viewer_api.get("/api/sessions/").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    refused = viewer_api.get("/api/sessions/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60


def test_the_count_lives_in_redis_shared_by_every_web_process(viewer_api, viewer, settings,
                                                               redis_client):  # fmt: skip
    settings.API_USER_RATE = "3/minute"
    viewer_api.get("/api/sessions/")
    keys = [key.decode() for key in redis_client.scan_iter("lt-cache*throttle_user*")]
    assert any(key.endswith(f"throttle_user_{viewer.pk}") for key in keys), keys


def test_anonymous_callers_are_limited_by_address(settings):
    settings.API_ANONYMOUS_RATE = "2/minute"
    client = APIClient()
    statuses = [client.post("/api/auth/token/", {}).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_users_are_counted_separately(viewer_api, api, settings):
    settings.API_USER_RATE = "2/minute"
    assert [viewer_api.get("/api/sessions/").status_code for _ in range(3)][-1] == 429
    assert api.get("/api/sessions/").status_code == 200
