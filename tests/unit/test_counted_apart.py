"""A run's figures count two parts of its requests apart: requests a stop cut (no failures,
out of the error rate) and attempts that never reached the target (failures, and what
``requests - unreached`` leaves is what the target received); the worker inventory counts load
and control workers apart."""

from apps.sessions.results.figures import RunFigures
from apps.workers.inventory import LOAD_QUEUE, worker_role, worker_summary


def test_requests_cut_by_a_stop_are_left_out_of_the_error_rate():
    figures = RunFigures(requests=110, failures=10, duration_s=10.0, cut_by_stop=10,
                         failures_by_class={"http_5xx": 10})  # fmt: skip
    assert figures.error_rate == 0.1  # 10 of the 100 that ended, not of 110
    assert figures.error_rate_by_class() == {"http_5xx": 0.1}
    assert figures.rps == 11.0  # every request sent counts in the rate
    shown = figures.as_dict()
    assert (shown["requests"], shown["cut_by_stop"], shown["unreached"]) == (110, 10, 0)


def test_a_run_whose_every_request_was_cut_has_no_error_rate():
    figures = RunFigures(requests=20, failures=0, duration_s=2.0, cut_by_stop=20)
    assert figures.error_rate is None
    assert figures.error_rate_by_class() == {}


def test_unreached_attempts_stay_failures_in_the_error_rate():
    figures = RunFigures(requests=50, failures=5, duration_s=5.0, unreached=5,
                         failures_by_class={"network": 5})  # fmt: skip
    assert figures.error_rate == 0.1
    assert figures.as_dict()["unreached"] == 5


def test_workers_are_counted_by_role_with_the_load_workers_processes():
    workers = [
        {"hostname": "load@a", "queues": [LOAD_QUEUE], "concurrency": 2, "shards": []},
        {"hostname": "load@b", "queues": [LOAD_QUEUE], "concurrency": 4, "shards": []},
        {"hostname": "control@a", "queues": ["control"], "concurrency": 2, "shards": []},
        # Heartbeats of a worker whose presence expired: it runs shards, so it is a load one.
        {"hostname": "load@c", "pid": None, "shards": [{"session": 1}]},
    ]
    for worker in workers:
        worker["role"] = worker_role(worker)
    assert [worker["role"] for worker in workers] == ["load", "load", "control", "load"]
    assert worker_summary(workers) == {"load_workers": 3, "load_processes": 6, "control_workers": 1}
