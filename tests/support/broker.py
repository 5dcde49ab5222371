"""Pointing this process's Celery publisher at another broker URL."""

from __future__ import annotations

from loadtest_project import celery_app


def use_broker(url: str) -> None:
    """Point this process's Celery publisher at ``url``: the app keeps the connection pools it
    made for the previous URL. They are dropped, not closed: kombu keeps one pool per URL for
    the whole process, and the previous URL's is used again afterwards."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
