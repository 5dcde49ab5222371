"""``loadtest run``: one session from a config file, on the real workers, judged by its
thresholds, with an exit code a CI reads.

The session is created and started through ``services`` like any other, by the system (the
command runs with the server's own settings and database, so whoever can run it is already
above every role) or, with ``--user``, by a named user whose operator permission is then
checked exactly as the API checks it. The run then waits on the database row, which the
monitor keeps current, and reads the thresholds' final judgement once the monitor has marked
the figures complete (``results_final_at``).

With ``--baseline`` the finished run is then compared with its target's baseline (or, with
``--baseline ID``, with that session), the deltas printed, and a regression (a figure worse
by more than the margin, ``apps/sessions/comparison.py``) fails the run; a target without a
baseline is said so and does not.

Exit codes: 0 every threshold passed (and no regression); 1 a threshold failed, the session's
error brake (``max_errors_per_minute``) stopped it, it regressed against the baseline, or
nothing could be judged against the baseline (too few requests); 2 bad input, or the session
could not run to its end (failed, stopped by someone, never started).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError

from apps.sessions.choices import ACTIVE_STATUSES, EndReason, SessionStatus, Via
from apps.sessions.cli import reports
from apps.sessions.cli.config_file import ConfigError, build_session, read_config
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.editing import create_session
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import LoadTestSession
from apps.sessions.results import comparison, units
from apps.sessions.results.figures import figures_by_scope
from apps.sessions.results.report import write_report

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
POLL_S = 0.5
# After the end, how long to wait for the monitor's final judgement before giving up.
FINAL_WAIT_S = 60.0
# A session still "starting" this long after SHARD_START_TIMEOUT_S has no monitor watching
# it (no control worker or no beat): the monitor would have failed it by then.
NO_MONITOR_GRACE_S = 30.0
BAR_WIDTH = 24
BASELINE_OF_TARGET = "target"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM (a cancelled CI job): the session is stopped before leaving."""


@dataclass
class RunOptions:
    config: str
    target: str | None = None
    thresholds: list[str] = field(default_factory=list)
    abort_on_fail: bool = False
    exports: list[str] = field(default_factory=list)
    junit: str | None = None
    report: str | None = None
    quiet: bool = False
    username: str | None = None
    progress_interval_s: float = 5.0
    # "target": the target's baseline; a session id: that session; None: no comparison.
    baseline: str | None = None


class Run:
    """One headless run; ``execute`` returns the exit code."""

    def __init__(self, options: RunOptions, out: TextIO, err: TextIO) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.tty = out.isatty()
        self.session: LoadTestSession | None = None
        self.baseline: LoadTestSession | None = None

    def say(self, text: str) -> None:
        if not self.options.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def refuse(self, message: str) -> int:
        self.err.write(f"loadtest run: {message}\n")
        return EXIT_ERROR

    def execute(self) -> int:
        try:
            outputs = self._check_outputs()
            user = self._user()
            self.baseline = self._given_baseline()
            config = read_config(self.options.config)
            thresholds = list(self.options.thresholds)
            session = build_session(config, self.options.target, thresholds)
        except ConfigError as exc:
            return self.refuse(str(exc))
        if self.options.abort_on_fail:
            session.thresholds = [
                text if text.rstrip().endswith(" abort") else f"{text.rstrip()} abort"
                for text in session.thresholds
            ]
        try:
            self.session = create_session(session, user=user, via=Via.CLI)
            self.session = start_session(self.session, user=user, via=Via.CLI)
        except ValidationError as exc:
            return self.refuse(_validation_text(exc))
        except (PermissionDenied, SessionStateError, EngineUnavailable) as exc:
            return self.refuse(str(exc))
        for warning in getattr(self.session, "warnings", []):
            self.err.write(f"loadtest run: warning: {warning}\n")
        self.say(
            f"Session {self.session.pk} '{self.session.session_name}' started on "
            f"{self.session.target.base_url}: {self.session.concurrent_users} users, "
            + (
                f"{float(self.session.duration_minutes) * 60:g} s"
                if self.session.duration_minutes
                else "until stopped"
            )
            + f", {len(self.session.thresholds)} threshold(s)."
        )
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, _interrupt)
        try:
            interrupted = False
            try:
                self._wait_for_end()
            except Interrupted:
                interrupted = True
                self._stop_after_interrupt(user)
            final = self._wait_for_final()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._conclude(final, interrupted, outputs)

    def _check_outputs(self) -> list[Path]:
        """Outputs are checked before any load is sent: a typo costs nothing."""
        paths = [Path(name) for name in self.options.exports]
        for path in paths:
            if path.suffix.lower() not in reports.EXPORT_SUFFIXES:
                raise ConfigError(f"--export {path}: must end in .json or .csv.")
        if self.options.junit is not None:
            paths.append(Path(self.options.junit))
        if self.options.report is not None:
            problem = reports.check_report_path(Path(self.options.report))
            if problem:
                raise ConfigError(problem)
        for path in paths:
            if not path.parent.is_dir():
                raise ConfigError(f"{path}: its directory {path.parent} does not exist.")
        return paths[: len(self.options.exports)]

    def _given_baseline(self) -> LoadTestSession | None:
        """``--baseline ID``: a finished session, checked before any load is sent."""
        raw = self.options.baseline
        if raw is None or raw == BASELINE_OF_TARGET:
            return None
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError(f"--baseline {raw[:40]}: give a session id, or nothing for the "
                              "target's baseline.")  # fmt: skip
        baseline = LoadTestSession.objects.select_related("target").filter(pk=int(raw)).first()
        if baseline is None:
            raise ConfigError(f"--baseline {raw}: no such session.")
        if not comparison.is_finished(baseline):
            raise ConfigError(
                f"--baseline {raw}: the session is {baseline.status}; compare with a completed "
                "or stopped one."
            )
        return baseline

    def _user(self):
        if self.options.username is None:
            return None
        user = get_user_model().objects.filter(username=self.options.username).first()
        if user is None or not user.is_active:
            raise ConfigError(f"--user: no active user '{self.options.username}'.")
        return user

    def _wait_for_end(self) -> None:
        session = self.session
        started = time.monotonic()
        last_line = 0.0
        while True:
            session.refresh_from_db()
            if session.status not in ACTIVE_STATUSES:
                break
            now = time.monotonic()
            if now - last_line >= self.options.progress_interval_s or self.tty:
                self._progress(session)
                last_line = now
            waited = now - started
            if (
                session.status == SessionStatus.STARTING
                and waited > settings.SHARD_START_TIMEOUT_S + NO_MONITOR_GRACE_S
            ):
                stop_session(
                    session,
                    reason=EndReason.FAILURE,
                    detail="No monitor answered (is the control worker or beat down?).",
                    via=Via.CLI,
                )
                break
            time.sleep(POLL_S)
        if self.tty and not self.options.quiet:
            self.out.write("\n")

    def _progress(self, session: LoadTestSession) -> None:
        if self.options.quiet:
            return
        whole = figures_by_scope(session)[None]
        elapsed = session.duration_s()
        rate = whole.observe("error_rate")
        results = session.threshold_results or []
        failing = sum(1 for result in results if result["passed"] is False)
        passing = sum(1 for result in results if result["passed"] is True)
        text = (
            f"{session.status:<8} {elapsed:6.1f} s  requests {whole.requests:,}  failures "
            f"{whole.failures:,}" + (f" ({rate:.1%})" if rate is not None else "")
            + f"  {units.rate(whole.observe('rps') or 0)} requests/s"
            + (f"  p95 {whole.p95_ms:,.1f} ms" if whole.p95_ms is not None else "")
            + (f"  thresholds {passing} pass, {failing} fail" if results else "")
        )  # fmt: skip
        if self.tty:
            duration_s = float(session.duration_minutes) * 60
            if duration_s:
                done = min(elapsed / duration_s, 1.0)
                bar = "#" * int(done * BAR_WIDTH)
                text = f"[{bar:<{BAR_WIDTH}}] {done:4.0%} {text}"
            self.out.write("\r" + text[:200].ljust(120))
            self.out.flush()
        else:
            self.say(text)

    def _stop_after_interrupt(self, user) -> None:
        # A second Ctrl-C or SIGTERM ends the command at once (the stop is on its way).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        self.err.write("\nloadtest run: interrupted; stopping the session...\n")
        try:
            stop_session(self.session, user=user, via=Via.CLI)
        except (SessionStateError, EngineUnavailable) as exc:
            self.err.write(f"loadtest run: {exc}\n")
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            self.session.refresh_from_db()
            if self.session.status not in ACTIVE_STATUSES:
                return
            time.sleep(POLL_S)

    def _wait_for_final(self) -> bool:
        """The final judgement comes with the monitor's last pass, after the end; a session
        that failed gets none."""
        session = self.session
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            session.refresh_from_db()
            if session.results_final_at is not None:
                return True
            if session.status == SessionStatus.FAILED or session.start_time is None:
                return False
            time.sleep(POLL_S)
        return False

    def _conclude(self, final: bool, interrupted: bool, outputs: list[Path]) -> int:
        session = self.session
        session.refresh_from_db()
        problem = ""
        if session.status == SessionStatus.FAILED:
            problem = f"the session failed ({session.end_reason}): {session.end_detail}"
        elif interrupted or session.end_reason in (
            EndReason.STOPPED_BY_USER,
            EndReason.EMERGENCY_STOP,
        ):
            problem = f"the session was stopped before its end ({session.get_end_reason_display()})"
        elif not final:
            problem = (
                f"no final results from the monitor within {FINAL_WAIT_S:g} s of the end "
                "(is the control worker running?)"
            )
        results = session.threshold_results or []
        failed = [result for result in results if not result["passed"]]
        if problem:
            code = EXIT_ERROR
        elif failed or session.end_reason in (
            EndReason.ERROR_THRESHOLD,
            EndReason.THRESHOLD_FAILED,
        ):
            code = EXIT_FAILED
        else:
            code = EXIT_PASSED
        for path in outputs:
            reports.write_export(path, session)
        if self.options.junit is not None:
            reports.write_junit(Path(self.options.junit), session, problem)
        if self.options.report is not None:
            write_report(Path(self.options.report), session)
        self.say(reports.summary(session))
        against = None if problem else self._against_baseline(session)
        regressed = bool(against and against["regression"])
        # Like a threshold that could not be judged, a baseline comparison that judged nothing
        # fails the run: a CI gate must not pass on a run too short to say anything.
        unjudged = bool(against and not against["judged"])
        if (regressed or unjudged) and code == EXIT_PASSED:
            code = EXIT_FAILED
        if problem:
            self.err.write(f"loadtest run: {problem}.\n")
        if code == EXIT_FAILED:
            reasons = []
            if failed:
                reasons.append(f"{len(failed)} of {len(results)} thresholds failed")
            elif session.end_reason in (EndReason.ERROR_THRESHOLD, EndReason.THRESHOLD_FAILED):
                reasons.append("max_errors_per_minute stopped the session")
            if regressed and against is not None:
                reasons.append(f"a regression against baseline #{against['baseline']}")
            elif unjudged and against is not None:
                why = "too few requests" if against["same_load"] else "the load differed"
                reasons.append(f"nothing judged against baseline #{against['baseline']} ({why})")
            self.say(f"\nResult: FAIL, {' and '.join(reasons)} (exit 1).")
        elif code == EXIT_PASSED:
            self.say(
                f"\nResult: PASS, all {len(results)} thresholds passed"
                + (" and no regression against the baseline" if against is not None else "")
                + " (exit 0)."
            )
        return code

    def _against_baseline(self, session: LoadTestSession) -> dict | None:
        """With ``--baseline``: print the deltas; the comparison, or None when there is
        nothing to compare with (said so)."""
        if self.options.baseline is None:
            return None
        baseline = self.baseline
        if baseline is None:
            session.target.refresh_from_db()
            baseline = session.target.baseline_session
        if baseline is None:
            self.say(
                f"\nNo baseline: target '{session.target.name}' has none, so there is nothing "
                "to compare with (mark a finished session as its baseline: POST "
                "/api/sessions/ID/baseline/, or give --baseline ID)."
            )
            return None
        against = comparison.against_baseline(session, baseline)
        if against is None:  # the session did not finish (its problem is reported)
            return None
        self.say("\n" + reports.baseline_table(against))
        return against


def _interrupt(signum, frame) -> None:
    raise Interrupted


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def run(options: RunOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    return Run(options, out, err).execute()
