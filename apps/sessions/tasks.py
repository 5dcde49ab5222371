"""Celery tasks of the control plane: thin wrappers around the monitor, on the `control` queue.

The monitor's tasks send no task events (``send_events=False``, which the worker honours
whatever ``-E`` or Flower's ``enable_events`` say): they run every MONITOR_INTERVAL_S per
session and would be nearly every task Flower lists, burying the shards. Their work shows in
the sessions' own events and statistics instead.

Task names are spelled out (``MONITOR_SESSION_TASK`` is how the lifecycle queues a
tick without importing this module, which imports the monitor, which calls the lifecycle).
"""

import logging

from celery import shared_task

from apps.sessions.integrations import newrelic, webhooks
from apps.sessions.lifecycle import monitor, schedules
from apps.sessions.lifecycle.editing import purge_expired_sessions
from apps.sessions.lifecycle.transitions import MONITOR_SESSION_TASK
from apps.sessions.results import downsampling

logger = logging.getLogger(__name__)


@shared_task(name=MONITOR_SESSION_TASK, send_events=False)
def monitor_session(session_id: int) -> None:
    """One monitor tick of a session (see ``monitor``)."""
    try:
        monitor.monitor_session(session_id)
    except Exception:
        # Logged, and retried by the next beat: a database lock or Redis blip must not
        # stop the monitoring of a session.
        logger.exception("Session %s: monitor tick failed; the next one retries.", session_id)


@shared_task(name="apps.sessions.tasks.monitor_active_sessions", send_events=False)
def monitor_active_sessions() -> None:
    """Periodic (Celery beat): a monitor tick for every active session."""
    monitor.monitor_active_sessions()


# max_retries=None: ``webhooks.deliver`` decides when to give up (WEBHOOK_MAX_RETRIES), so
# that the last failure is recorded as the session's event rather than raised.
@shared_task(bind=True, name=webhooks.DELIVER_TASK, send_events=False, max_retries=None)
def deliver_webhook(self, webhook_id: int, session_id: int, event: str, body: str) -> None:
    """One attempt to deliver a session's event to a webhook; retried with backoff."""
    delay_s = webhooks.deliver(webhook_id, session_id, event, body, self.request.retries)
    if delay_s is not None:
        raise self.retry(countdown=delay_s)


@shared_task(name="apps.sessions.tasks.downsample_and_purge", send_events=False)
def downsample_and_purge() -> None:
    """Periodic (Celery beat, every DOWNSAMPLE_INTERVAL_S): roll old time-series points up
    and purge sessions past SESSION_RETENTION_DAYS, so storage stays bounded however long
    sessions run. Each half is retried by the next beat should it fail."""
    try:
        downsampling.downsample_all()
    except Exception:
        logger.exception("Time-series downsampling failed; the next run retries.")
    try:
        purge_expired_sessions()
    except Exception:
        logger.exception("Purging expired sessions failed; the next run retries.")


@shared_task(name=schedules.RUN_SCHEDULE_TASK)
def run_schedule(schedule_id: int) -> None:
    """Periodic (Celery beat, one PeriodicTask per schedule): one firing of a schedule."""
    schedules.run_schedule(schedule_id)


@shared_task(name=newrelic.MARKER_TASK, send_events=False)
def send_newrelic_marker(session_id: int, phase: str) -> None:
    """A session's start or end marker on the New Relic entity (see ``newrelic``)."""
    newrelic.send_marker(session_id, phase)


@shared_task(name="apps.sessions.tasks.send_newrelic_summaries", send_events=False)
def send_newrelic_summaries() -> None:
    """Periodic (Celery beat, every NEW_RELIC_EVENT_INTERVAL_S): a LoadTestSummary event per
    active session, when New Relic's Event API is configured."""
    newrelic.send_summaries()
