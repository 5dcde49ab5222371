"""Schema-driven fuzzing: schemathesis generates requests from /api/schema/ for every
operation, and none may answer with a server error (5xx).

Starting sessions and the emergency stop are left out: they send real load, and have
integration tests of their own; the stream (SSE) never ends by itself. (schemathesis'
lazy pytest integration does not run under pytest 9, so the operations are walked here.)
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from apps.sessions.models import Endpoint, LoadTestSession, Target
from loadtest_project.wsgi import application

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 25
LEFT_OUT = r"(/start/|/emergency-stop/|/events/)$"


@pytest.fixture(autouse=True)
def _keep_the_test_transaction_open():
    """Django closes database connections around each WSGI request; the test's transaction
    lives on one, so, as Django's own test client does, keep it open."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def admin_token(administrator) -> str:
    return Token.objects.create(user=administrator).key


@pytest.fixture
def api_schema(admin_token):
    # Something for the fuzzer's ids to find, besides nonsense.
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="slow", url="/performance/slow")
    LoadTestSession.objects.create(session_name="s", target=target)
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers={"Authorization": f"Token {admin_token}"}
    ).exclude(path_regex=LEFT_OUT)


def test_no_operation_answers_with_a_server_error(api_schema, admin_token):
    headers = {"Authorization": f"Token {admin_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 25  # the schema really was walked

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_server_error(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        no_server_error()
