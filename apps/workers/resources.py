"""The resource guard: a worker process past its memory or CPU ceiling sheds users.

The seed names resource errors (memory, CPU overload) among the failures to handle. A load
generator that starves its own machine reports wrong latencies and can crash mid-run, losing
its counts; shedding a quarter of the users at a time, and restoring them once the process
has been comfortably below its ceilings for a while, keeps it honest and alive.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import psutil

SHED_STEP = 0.75  # each step keeps three quarters of the users
OVER_CHECKS_TO_SHED = 3  # consecutive checks above a ceiling
UNDER_CHECKS_TO_RESTORE = 10  # consecutive checks below 80% of every ceiling


@dataclass
class GuardDecision:
    factor: float
    changed: bool
    message: str = ""


class ResourceGuard:
    """Checked about once a second; ``factor`` scales the shard's users (1.0 = all)."""

    def __init__(
        self, max_rss_mb: float, max_cpu_percent: float, process: psutil.Process | None = None
    ) -> None:
        self.max_rss_mb = max_rss_mb
        self.max_cpu_percent = max_cpu_percent
        self.process = process or psutil.Process()
        self.factor = 1.0
        self._over = 0
        self._under = 0
        self.process.cpu_percent(None)  # the first reading only starts the measurement

    @property
    def enabled(self) -> bool:
        return self.max_rss_mb > 0 or self.max_cpu_percent > 0

    def check(self) -> GuardDecision:
        if not self.enabled:
            return GuardDecision(self.factor, False)
        rss_mb = self.process.memory_info().rss / 2**20
        cpu_percent = self.process.cpu_percent(None)
        over = []
        if self.max_rss_mb > 0 and rss_mb > self.max_rss_mb:
            over.append(f"memory {rss_mb:.0f} MB > {self.max_rss_mb:g} MB")
        if self.max_cpu_percent > 0 and cpu_percent > self.max_cpu_percent:
            over.append(f"CPU {cpu_percent:.0f}% > {self.max_cpu_percent:g}%")
        comfortable = (self.max_rss_mb <= 0 or rss_mb < 0.8 * self.max_rss_mb) and (
            self.max_cpu_percent <= 0 or cpu_percent < 0.8 * self.max_cpu_percent
        )
        if over:
            self._over += 1
            self._under = 0
            if self._over >= OVER_CHECKS_TO_SHED:
                self._over = 0
                self.factor = max(self.factor * SHED_STEP, 0.01)
                return GuardDecision(self.factor, True, ", ".join(over))
        elif comfortable and self.factor < 1.0:
            self._over = 0
            self._under += 1
            if self._under >= UNDER_CHECKS_TO_RESTORE:
                self._under = 0
                self.factor = min(self.factor / SHED_STEP, 1.0)
                return GuardDecision(
                    self.factor, True, f"memory {rss_mb:.0f} MB, CPU {cpu_percent:.0f}%"
                )
        else:  # between comfortable and the ceiling: neither shed nor restore
            self._over = 0
            self._under = 0
        return GuardDecision(self.factor, False)


def raise_open_files_limit() -> int:
    """Lift this process's soft limit on open files to its hard limit; returns the limit.

    Every user in flight holds a socket: a closed model's users all send at once at the start
    (without a ramp), so 20,000 users need 20,000 sockets for a moment. Distributions ship a
    soft limit of 1,024 under a far higher hard one, which any process may take for itself.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError):
            return soft
    return soft
