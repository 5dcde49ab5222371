"""Django's test client as a signed-in browser, and the new-session form as it posts."""

from __future__ import annotations

from django.test import Client


def browser_for(user) -> Client:
    """A client signed in as ``user`` through its session cookie, as a browser is."""
    client = Client()
    client.force_login(user)
    return client


def form_body(target, **changes):
    body = {
        "session_name": "from the form",
        "target": target.pk,
        "concurrent_users": "5",
        "duration_minutes": "1",
        "ramp_up_seconds": "0",
        "max_errors_per_minute": "100",
        "model": "closed",
        "request_interval_min": "0.5",
        "request_interval_max": "1",
        "target_rps": "",
        "enable_logging": "on",
    }
    for endpoint in target.endpoints.all():
        body[f"weight_{endpoint.pk}"] = str(endpoint.weight)
    body.update(changes)
    return body
