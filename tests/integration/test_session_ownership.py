"""Sessions belong to the team, not to whoever created them (issue 22, item 12).

The rule, stated in the README's Security section and docs/operations/security.md: any user
holding the operator role may resize, stop and delete any session, whoever created it; each
change is recorded with the name of the user who made it (the session's events, its
``stopped_by``, the audit log), so "who stopped my run" always has an answer.
"""

from __future__ import annotations

import pytest

from apps.sessions.access import roles
from apps.sessions.models import AuditEntry, LoadTestSession

from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.users import client_for, persona
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_another_operator_resizes_stops_and_deletes_a_session_and_is_named(
    api, operator, workers, counting_server, forget_redis_sessions
):
    session_id = start_load(api, counting_server, concurrent_users=2, duration_minutes="0", **BRISK)
    assert LoadTestSession.objects.get(pk=session_id).created_by == operator
    wait_until(lambda: LoadTestSession.objects.get(pk=session_id).status == "running", timeout_s=20)
    bob = persona("bob", roles.OPERATOR)
    other = client_for(bob)

    resized = other.patch(f"/api/sessions/{session_id}/", {"concurrent_users": 3}, format="json")
    assert resized.status_code == 200, resized.json()
    stopped = other.post(f"/api/sessions/{session_id}/stop/")
    assert stopped.status_code == 202, stopped.json()
    session = wait_for_status(session_id, timeout_s=30)

    assert session.status == "stopped"
    assert session.stopped_by == bob
    actors = {event.kind: event.actor for event in session.events.all()}
    assert actors["users_changed"] == "bob"
    assert actors["stop_requested"] == "bob"
    assert actors["created"] == "olivia"

    deleted = other.delete(f"/api/sessions/{session_id}/")
    assert deleted.status_code == 204
    assert not LoadTestSession.objects.filter(pk=session_id).exists()
    bob_did = set(AuditEntry.objects.filter(username="bob").values_list("method", flat=True))
    assert {"PATCH", "POST", "DELETE"} <= bob_did
