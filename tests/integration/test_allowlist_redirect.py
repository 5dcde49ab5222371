"""Load never leaves the allow-list by a redirect: a 3xx is an answer, not an instruction."""

import pytest

from ..support.servers import CountingServer
from ..support.sessions import BRISK, start_load, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def off_list_server():
    server = CountingServer(host="127.0.0.2").start()  # loopback, but not on the allow-list
    yield server
    server.stop()


def test_redirect_to_a_host_off_the_allow_list_is_not_followed(
    api, workers, counting_server, off_list_server, forget_redis_sessions, settings
):
    assert "127.0.0.2" not in settings.ALLOWED_TARGET_HOSTS
    counting_server.redirects["/go"] = f"{off_list_server.base_url}/stolen-load"
    session_id = start_load(
        api, counting_server, [("go", "/go", 1.0)], concurrent_users=3,
        duration_minutes="0.05", **BRISK,
    )  # fmt: skip
    session = wait_for_status(session_id, timeout_s=30)

    assert session.status == "completed"
    assert counting_server.count("/go") == session.total_requests > 20
    assert off_list_server.total == 0
    assert session.total_failures == 0  # the 302 is the endpoint's answer
