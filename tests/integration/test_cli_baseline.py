"""``manage.py loadtest run --baseline`` as a CI runs it: a subprocess on the real workers
that compares its run with the target's baseline (or a given session), prints the deltas,
and exits 1 on a regression, 0 without one or without a baseline, 2 for a bad baseline."""

import os
import subprocess
import sys

import pytest

from apps.sessions.models import LoadTestSession
from apps.sessions.results.baselines import set_baseline

from ..support.cli import ROOT, write_config
from ..support.sessions import make_target

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def loadtest(workers, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **workers.env,
        "LOG_LEVEL": "WARNING",
        # A 3 s run's few hundred requests are judged (the default wants 100 per endpoint).
        "THRESHOLD_MIN_REQUESTS": "20",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "loadtest", "run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_baseline_exit_codes(api, workers, counting_server, forget_redis_sessions, tmp_path):
    make_target(api, counting_server)
    config = str(write_config(tmp_path, counting_server.base_url))

    first = loadtest(workers, "--config", config, "--baseline")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "No baseline: target 'counting-" in first.stdout
    fast = LoadTestSession.objects.latest("pk")
    set_baseline(fast)

    # Every answer 100 ms slower: the run regressed against the fast baseline.
    counting_server.delay_s = 0.1
    slower = loadtest(workers, "--config", config, "--baseline")
    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert f"Against baseline #{fast.pk} 'ci smoke'" in slower.stdout
    assert "Regressions:" in slower.stdout and "all endpoints: p95 up " in slower.stdout
    assert f"Result: FAIL, a regression against baseline #{fast.pk} (exit 1)." in slower.stdout
    slow = LoadTestSession.objects.latest("pk")
    assert slow.status == "completed"  # the run itself went well: only the comparison failed

    # Fast again, compared with the slow run by its id: better everywhere, exit 0.
    counting_server.delay_s = 0
    faster = loadtest(workers, "--config", config, "--baseline", str(slow.pk))
    assert faster.returncode == 0, faster.stdout + faster.stderr
    assert f"Against baseline #{slow.pk}" in faster.stdout
    assert "No regression against the baseline." in faster.stdout
    assert "and no regression against the baseline (exit 0)." in faster.stdout

    # Twice the users: the load differs from the baseline's, so nothing is judged, the
    # difference is printed, and a CI gate fails rather than pass on an unlike comparison.
    doubled = str(write_config(tmp_path, counting_server.base_url, concurrent_users=6))
    unlike = loadtest(workers, "--config", doubled, "--baseline", str(slow.pk))
    assert unlike.returncode == 1, unlike.stdout + unlike.stderr
    assert "Configuration (baseline → this run):\n  users: 3 → 6" in unlike.stdout
    assert (
        "Not judged against the baseline: users differ: 3 → 6; a verdict needs runs of the "
        "same load." in unlike.stdout
    )
    assert f"nothing judged against baseline #{slow.pk} (the load differed)" in unlike.stdout

    # A baseline that does not exist, or has not finished, is bad input: no load is sent.
    sent = counting_server.total
    unknown = loadtest(workers, "--config", config, "--baseline", "999999")
    assert unknown.returncode == 2
    assert "--baseline 999999: no such session." in unknown.stderr
    pending = LoadTestSession.objects.create(session_name="later", target=fast.target)
    not_finished = loadtest(workers, "--config", config, "--baseline", str(pending.pk))
    assert not_finished.returncode == 2 and "the session is pending" in not_finished.stderr
    assert counting_server.total == sent
