"""Run the Procfile's processes without Docker: the run command and the tests use this.

Each process gets its own session (process group), so Ctrl-C reaches only the supervisor,
which then stops every child in order: SIGTERM to the leader (Celery's warm shutdown lets
shards flush), and SIGKILL to the whole group after the grace period, so nothing is left.
A process that exits can be started again with the same command and environment
(``restart``), after a delay that grows while it keeps crashing (``RestartBackoff``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
# The Procfile line that prepares a release (migrate, collect static files, defaults) and then
# exits. Platforms run it once per release; whoever starts the Procfile's processes skips it.
RELEASE = "release"
_COLOURS = ["36", "33", "32", "35", "34", "31", "96", "93"]


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """``name: command`` lines; blank lines and ``#`` comments are skipped.

    Every line is returned, ``release`` (``RELEASE``) too: a caller that starts the lines as
    long-running processes skips that one-off step explicitly.
    """
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, command = line.partition(":")
        if not separator or not name.strip().isidentifier() or not command.strip():
            raise ValueError(f"{path}:{number}: expected 'name: command', got {line!r}")
        entries[name.strip()] = command.strip()
    return entries


class ManagedProcess:
    """One started command, with what it takes to start it again."""

    def __init__(
        self,
        name: str,
        command: str,
        env: Mapping[str, str],
        log_path: Path | None,
        colour: str,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.log_path = log_path
        self.colour = colour
        self._log: IO | None = open(log_path, "ab") if log_path else None  # noqa: SIM115 (closed in kill_group)
        self.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log if self._log else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        if self._log is None:
            threading.Thread(
                target=_relay_output, args=(self.popen, name, colour), daemon=True
            ).start()

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL every process of the group (Celery's pool children included)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class ProcessGroup:
    """Starts named shell commands and stops them all together."""

    def __init__(self, base_env: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if base_env is None else base_env)
        # Procfile commands name `celery` and `python`: use this interpreter's environment.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.base_env = env
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        command: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> ManagedProcess:
        """Start ``command`` under ``sh``; output goes to ``log_path`` or, prefixed, to ours.

        Its log lines carry ``name`` (LOG_PROCESS_NAME) unless ``env`` names it otherwise.
        """
        colour = _COLOURS[len(self.processes) % len(_COLOURS)]
        full_env = {**self.base_env, "LOG_PROCESS_NAME": name, **(env or {})}
        managed = ManagedProcess(name, command, full_env, log_path, colour)
        self.processes.append(managed)
        return managed

    def first_exited(self) -> ManagedProcess | None:
        return next(iter(self.exited()), None)

    def exited(self) -> list[ManagedProcess]:
        return [process for process in self.processes if not process.running()]

    def restart(self, process: ManagedProcess) -> ManagedProcess:
        """Start an exited process again, in its place, after clearing what is left of it
        (a Celery worker killed with SIGKILL leaves its pool processes behind)."""
        process.kill_group()
        again = ManagedProcess(
            process.name, process.command, process.env, process.log_path, process.colour
        )
        self.processes[self.processes.index(process)] = again
        return again

    def stop(self, process: ManagedProcess, grace_s: float = 15.0) -> None:
        process.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=grace_s)
        process.kill_group()

    def stop_all(self, grace_s: float = 15.0) -> None:
        """SIGTERM everyone at once, wait up to ``grace_s`` in total, then SIGKILL groups."""
        for process in self.processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))
        for process in self.processes:
            process.kill_group()
        self.processes.clear()


class RestartBackoff:
    """How long to wait before restarting a process that exited: ``first_s``, doubling up to
    ``max_s`` while it keeps exiting soon after each start, and ``first_s`` again once it has
    stayed up ``stable_after_s``. A process that cannot start (a port taken, a bad setting)
    is then retried every ``max_s`` rather than in a tight loop."""

    def __init__(self, first_s: float = 1.0, max_s: float = 30.0, stable_after_s: float = 60.0):
        self.first_s = first_s
        self.max_s = max_s
        self.stable_after_s = stable_after_s
        self._next_s = first_s

    def delay_s(self, uptime_s: float) -> float:
        """The wait before the next start of a process that exited after ``uptime_s``."""
        if uptime_s >= self.stable_after_s:
            self._next_s = self.first_s
        delay_s = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay_s


def _relay_output(popen: subprocess.Popen, name: str, colour: str) -> None:
    prefix = f"\033[{colour}m{name:>8} |\033[0m " if sys.stdout.isatty() else f"{name:>8} | "
    assert popen.stdout is not None
    for raw_line in popen.stdout:
        sys.stdout.write(prefix + raw_line.decode(errors="replace"))
        sys.stdout.flush()


def wait_for_celery_nodes(
    app, hostnames: list[str], timeout_s: float = 60.0, keep_waiting=lambda: True
) -> set[str]:
    """Ping the named Celery nodes until all answer, ``keep_waiting()`` turns false, or the
    time is up; returns the nodes that never answered (empty: all did).

    Each attempt opens a fresh broker connection: a pooled one may be dead after a Redis
    restart, and would fail every attempt.
    """
    deadline = time.monotonic() + timeout_s
    missing = set(hostnames)
    while missing and time.monotonic() < deadline and keep_waiting():
        try:
            with app.connection_for_write() as connection:
                replies = app.control.ping(
                    destination=sorted(missing), timeout=1.0, connection=connection
                )
        except Exception:  # the broker is not there yet, or the connection broke
            time.sleep(0.2)
            continue
        for reply in replies:
            missing.difference_update(reply)
    return missing
