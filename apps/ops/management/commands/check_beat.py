"""``manage.py check_beat``: the health check of the beat process (compose runs it).

Beat has no port and answers no remote control, so the check looks at what beat does: its
periodic monitor tick, run by the control worker, records when it ran. A recent one proves
beat, the broker and the control worker all work; an old or missing one exits non-zero.
"""

import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.sessions.lifecycle.monitor import BEAT_TICK_KEY
from apps.workers.control import get_redis

# Beat sends a tick every MONITOR_INTERVAL_S; a healthy stack loses a few at most.
MISSED_TICKS_TOLERATED = 10
MINIMUM_AGE_LIMIT_S = 30.0


class Command(BaseCommand):
    help = "Exit 0 if beat's periodic tick reached the control worker recently."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--max-age",
            type=float,
            default=max(MINIMUM_AGE_LIMIT_S, MISSED_TICKS_TOLERATED * settings.MONITOR_INTERVAL_S),
            help="Seconds since the last tick that still count as healthy.",
        )

    def handle(self, *args, max_age: float, **options) -> None:
        try:
            last_tick = get_redis().get(BEAT_TICK_KEY)
        except redis.RedisError as exc:
            raise CommandError(f"Redis does not answer: {exc}") from exc
        if last_tick is None:
            raise CommandError("No tick of beat has reached the control worker yet.")
        age = time.time() - float(last_tick)
        if age > max_age:
            raise CommandError(
                f"Beat's last tick reached the control worker {age:.0f} s ago (limit "
                f"{max_age:.0f} s): beat, the broker or the control worker is stuck."
            )
        self.stdout.write(f"Beat ticked {age:.1f} s ago.")
