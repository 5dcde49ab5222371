"""Celery tasks of the control plane: thin wrappers around the monitor, on the `control` queue.

The monitor's tasks send no task events (``send_events=False``, which the worker honours
whatever ``-E`` or Flower's ``enable_events`` say): they run every MONITOR_INTERVAL_S per
session and would be nearly every task Flower lists, burying the shards. Their work shows in
the sessions' own events and statistics instead.

Task names are spelled out (``services.MONITOR_SESSION_TASK`` is how the services queue a
tick without importing this module, which imports the monitor, which calls the services).
"""

import logging

from celery import shared_task

from . import monitor, services
from .services import MONITOR_SESSION_TASK, RUN_SCHEDULE_TASK

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


@shared_task(name=RUN_SCHEDULE_TASK)
def run_schedule(schedule_id: int) -> None:
    """Periodic (Celery beat, one PeriodicTask per schedule): one firing of a schedule."""
    services.run_schedule(schedule_id)
