"""When the test command runs pytest in parallel (pytest-xdist) and when it does not: the
container test and explicit choices run as given."""

import pytest

from scripts import dev


def test_the_suite_runs_in_parallel_by_default(monkeypatch):
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.setenv("TEST_WORKERS", "3")
    assert dev.parallel(["-k", "stop"]) == ["-n", "3", "--dist", "loadgroup"]


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "containers"],  # one compose stack: several processes would each start one
        ["tests/containers/"],
        ["-n", "0"],
        ["-p", "no:xdist"],
        ["--numprocesses=2"],
    ],
)
def test_the_container_test_and_explicit_choices_run_as_given(args, monkeypatch):
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    assert dev.parallel(args) == []


def test_one_shared_redis_runs_in_one_process(monkeypatch):
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    assert dev.parallel([]) == []
