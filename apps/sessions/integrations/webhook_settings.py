"""Saving and deleting webhooks: who may, for which sessions, with the configuration history."""

from __future__ import annotations

from django.db import transaction

from apps.sessions.access import config_history
from apps.sessions.access.permissions import (
    ADD_WEBHOOKS,
    CHANGE_SESSIONS,
    CHANGE_WEBHOOKS,
    DELETE_WEBHOOKS,
    MANAGE_GLOBAL_WEBHOOKS,
    require_permission,
)
from apps.sessions.models import Webhook


def check_webhook_scope(user, session_id: int | None) -> None:
    """A session's webhooks are its operators' (the permission to change sessions); a
    global webhook hears about every session, so only the admin role manages those."""
    if session_id is None:
        require_permission(user, MANAGE_GLOBAL_WEBHOOKS, "manage global webhooks")
    else:
        require_permission(user, CHANGE_SESSIONS, "manage a session's webhooks")


def save_webhook(webhook: Webhook, user=None, via: str = "api") -> Webhook:
    """Create or change a webhook, checked whole (URL rules in ``Webhook.clean``); a change
    needs the right to the webhook's scope before and after (moving a session's webhook to
    global needs the admin role)."""
    stored = Webhook.objects.filter(pk=webhook.pk).first() if webhook.pk else None
    if stored is None:
        require_permission(user, ADD_WEBHOOKS, "add webhooks")
    else:
        require_permission(user, CHANGE_WEBHOOKS, "change webhooks")
        check_webhook_scope(user, stored.session_id)
    check_webhook_scope(user, webhook.session_id)
    webhook.full_clean()
    if stored is None:
        webhook.created_by = user if user is not None and user.is_authenticated else None
        webhook.save()
        return webhook
    before = config_history.snapshot(stored)
    with transaction.atomic():
        webhook.save()
        config_history.record_changes(webhook, before, user=user, via=via)
    return webhook


def delete_webhook(webhook: Webhook, user=None) -> None:
    require_permission(user, DELETE_WEBHOOKS, "delete webhooks")
    check_webhook_scope(user, webhook.session_id)
    webhook.delete()
