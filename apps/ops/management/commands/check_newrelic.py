"""``manage.py check_newrelic``: try the New Relic settings once, before a session relies on
them: one marker on the entity (NerdGraph) and, when the Event API is configured, one
``LoadTestCheck`` event. Exits non-zero, saying what went wrong, when New Relic is off or
refuses either; the keys are never printed."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.sessions.integrations import newrelic


class Command(BaseCommand):
    help = "Send one test marker (and one test event) to New Relic with the current settings."

    def handle(self, *args, **options) -> None:
        if not newrelic.markers_enabled():
            raise CommandError(
                "New Relic is off: set NEW_RELIC_API_KEY (a user key) and NEW_RELIC_ENTITY_GUID."
            )
        problems = []
        error = newrelic.post_marker(newrelic.check_variables())
        self.stdout.write(f"marker: {'sent' if error is None else error}")
        if error is not None:
            problems.append(f"marker: {error}")
        if newrelic.events_enabled():
            event = {"eventType": "LoadTestCheck", "timestamp": int(time.time()),
                     "site": settings.SITE_URL}  # fmt: skip
            error = newrelic.post_events([event])
            self.stdout.write(f"events: {'sent' if error is None else error}")
            if error is not None:
                problems.append(f"events: {error}")
        else:
            self.stdout.write(
                "events: off (set NEW_RELIC_ACCOUNT_ID and NEW_RELIC_LICENSE_KEY or "
                "NEW_RELIC_INSERT_KEY for the LoadTestSummary events)"
            )
        if problems:
            raise CommandError("; ".join(problems))
