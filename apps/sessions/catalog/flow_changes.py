"""Saving and deleting multi-step flows: the one path every surface (API, admin, dashboard,
catalog files) takes, with its permission check and configuration history."""

from __future__ import annotations

from django.db import transaction

from apps.sessions.access import config_history
from apps.sessions.access.permissions import (
    ADD_FLOWS,
    CHANGE_FLOWS,
    DELETE_FLOWS,
    require_permission,
)
from apps.sessions.catalog.flows import check_flow
from apps.sessions.models import Flow, FlowStep


def save_flow(flow: Flow, steps: list[FlowStep], user=None, via: str = "api") -> Flow:
    """Create or change a flow with its steps, written whole (the old steps are replaced),
    checked as one (``flows.check_flow``); a change goes into the configuration history."""
    creating = flow.pk is None
    require_permission(
        user,
        ADD_FLOWS if creating else CHANGE_FLOWS,
        "add flows" if creating else "change flows",
    )
    check_flow(flow, steps)
    with transaction.atomic():
        stored = None if creating else Flow.objects.filter(pk=flow.pk).first()
        before = config_history.snapshot(stored) if stored is not None else None
        flow.save()
        flow.steps.all().delete()
        for position, step in enumerate(steps, start=1):
            step.pk = None
            step.flow = flow
            step.position = position
        FlowStep.objects.bulk_create(steps)
        if before is not None:
            config_history.record_changes(flow, before, user=user, via=via)
    return flow


def delete_flow(flow: Flow, user=None) -> None:
    """Delete a flow and its steps (the endpoints stay); finished sessions keep their plan."""
    require_permission(user, DELETE_FLOWS, "delete flows")
    flow.delete()
