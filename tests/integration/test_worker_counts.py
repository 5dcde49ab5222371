"""The overview and the workers page count load workers and the control worker apart
("Load workers: 1 (2 processes) · control: 1"), from the live workers' presences, as
``GET /api/workers/`` does in its ``summary`` (which the pages' scripts refresh them from)."""

import re

import pytest

from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONCURRENCY = 2  # the workers fixture's WORKER_CONCURRENCY


def _counts(text: str) -> tuple[int, int, int] | None:
    """(load workers, their processes, control workers) as a page writes them."""
    found = re.search(
        r'Load workers: <strong data-field="load_workers">(\d+)</strong> '
        r'\(<span data-field="load_processes">(\d+) process(?:es)?</span>\) · control: '
        r'<strong data-field="control_workers">(\d+)</strong>',
        text,
    )
    return tuple(int(number) for number in found.groups()) if found else None  # type: ignore[return-value]


def test_overview_and_workers_page_count_load_and_control_workers_apart(
    client, viewer, workers, viewer_api
):
    load = sorted(name for name in workers.hostnames if not name.startswith("control"))
    expected = (len(load), CONCURRENCY * len(load), 1)
    client.force_login(viewer)

    def page_counts(path: str):
        counts = _counts(client.get(path).content.decode())
        return counts if counts == expected else None

    # Presences are refreshed every few seconds: a worker another test restarted may still
    # be missing or stale for a moment.
    assert wait_until(lambda: page_counts("/"), timeout_s=15, what="overview counts")
    assert wait_until(lambda: page_counts("/workers/"), timeout_s=15, what="workers page counts")
    overview = client.get("/").content.decode()
    assert "Workers: " not in overview  # the old total that counted the control worker too

    listed = viewer_api.get("/api/workers/").json()
    assert listed["summary"] == {
        "load_workers": expected[0],
        "load_processes": expected[1],
        "control_workers": 1,
    }
    roles = {worker["hostname"]: worker["role"] for worker in listed["workers"]}
    assert {name for name, role in roles.items() if role == "load"} == set(load)
    assert [name for name, role in roles.items() if role == "control"] == [
        name for name in workers.hostnames if name.startswith("control")
    ]
    workers_page = client.get("/workers/").content.decode()
    assert "<td>control</td>" in workers_page and "<td>load</td>" in workers_page
