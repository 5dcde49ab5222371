"""A flow's regular expression cannot take the web process's memory (issue 22, item 2).

Saving a flow whose extraction regex was ``(?:(?:a{1000}){100}){11}`` raised a real web
process from about 140 to 450 MB, kept after the flow was gone. Here the Procfile's web line
runs under uvicorn, hostile flows are posted to the API and the dashboard's form, and the
process's resident memory is read before and after; ordinary patterns are still saved.
"""

from __future__ import annotations

import json
import time

import psutil
import pytest
import requests
from rest_framework.authtoken.models import Token

from apps.sessions.access import roles
from apps.sessions.models import Endpoint, Flow, Target

from ..support.users import persona
from ..support.web import procfile_web
from ..support.workers import database_url_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOSTILE = [
    "(?:(?:a{1000}){100}){11}",
    "(?:(?:a{1000}){100}){12}",
    "(?:(?:a{1000}){100}){13}",
]
GROWTH_MAX_MB = 60  # the unbounded compile took 300 MB for the first pattern alone


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    data_dir = tmp_path_factory.mktemp("regex-web-data")
    # The throttle counts in the shared Redis by user id: earlier tests' calls must not count.
    env = {"API_USER_RATE": "100000/minute"}
    log_path = data_dir / "uvicorn.log"
    with procfile_web(database_url, redis_url, data_dir, log_path, **env) as server:
        yield server


def resident_mb(pid: int) -> float:
    leader = psutil.Process(pid)
    processes = [leader, *leader.children(recursive=True)]
    return sum(process.memory_info().rss for process in processes) / 2**20


def test_hostile_patterns_are_refused_without_growing_the_web_process(web):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="login", url="/login", method="POST")
    token = Token.objects.create(user=persona("ada", roles.ADMIN)).key
    headers = {"Authorization": f"Token {token}"}

    def post_flow(name: str, pattern: str) -> requests.Response:
        body = {
            "target": target.pk,
            "name": name,
            "steps": [{"endpoint": "login", "extract": [{"name": "t", "regex": pattern}]}],
        }
        return requests.post(web.url("/api/flows/"), json=body, headers=headers, timeout=60)

    assert post_flow("warm-up", "order=(\\d+)").status_code == 201  # imports done
    before = resident_mb(web.process.pid)
    for index, pattern in enumerate(HOSTILE):
        started = time.monotonic()
        refused = post_flow(f"hostile-{index}", pattern)
        assert refused.status_code == 400, refused.text[:300]
        message = " ".join(refused.json()["steps[0].extract"])
        assert "extract[0].regex: its repetitions are too large" in message
        assert "10,000 steps" in message
        assert time.monotonic() - started < 5.0
    grown = resident_mb(web.process.pid) - before
    assert grown < GROWTH_MAX_MB, f"the web process grew by {grown:.0f} MB"
    ordinary = post_flow("ordinary", '"token":\\s*"([^"]{1,4096})"')
    assert ordinary.status_code == 201, ordinary.text[:300]
    assert sorted(Flow.objects.values_list("name", flat=True)) == ["ordinary", "warm-up"]


def test_the_dashboard_form_refuses_a_hostile_pattern(client, administrator):
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="login", url="/login", method="POST")
    client.force_login(administrator)
    steps = [{"endpoint": "login", "extract": [{"name": "t", "regex": HOSTILE[0]}]}]
    form = {"target": target.pk, "name": "shop", "weight": "1", "description": ""}
    started = time.monotonic()
    refused = client.post("/flows/new/", {**form, "steps": json.dumps(steps)})
    assert refused.status_code == 400
    assert "its repetitions are too large" in refused.content.decode()
    assert time.monotonic() - started < 5.0
    assert not Flow.objects.exists()
