"""The benchmark: our load path and Locust on the same local targets, in one run.

    python -m bench.run            # every figure, repeated; about 20 minutes
    python -m bench.run --quick    # every figure once, short; about 8 minutes
    python -m bench.run --quick --only l   # the chaos soak alone, 3 faults; about 4 minutes
    python -m bench.run --smoke    # b, c and e against the counting target only (the tests)

Prints a markdown table of figures, goals and ratios, with the median and min-max of repeated
runs, the versions, the core count and how processes were pinned; a missed goal says MISSED.
Targets and generators run on 127.0.0.1 only, each run bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtest_project.embedded_redis import EmbeddedRedis

from . import peers
from .targets import CountingTarget, Nginx, ensure_tools, pinned

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    figure: str
    what: str
    values: list[float]
    unit: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def cells(self) -> list[str]:
        if not self.values:
            measured = "—"
        elif len(self.values) == 1:
            measured = _fmt(self.values[0])
        else:
            measured = (f"{_fmt(statistics.median(self.values))} "
                        f"({_fmt(min(self.values))}-{_fmt(max(self.values))})")  # fmt: skip
        verdict = "" if self.met is None else ("met" if self.met else "**MISSED**")
        return [self.figure, self.what, f"{measured} {self.unit}".strip(), self.goal, verdict,
                self.note]  # fmt: skip


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class Plan:
    repeats: int
    throughput_s: float
    open_s: float
    closed_users: int
    closed_s: float
    latency_s: float
    stops: int
    footprint_s: float
    viewers_s: float = 0  # how long the probe viewer measures the lag, per viewer count
    # Figure k: simulated seconds between downsampler runs (beat's DOWNSAMPLE_INTERVAL_S).
    downsample_interval_s: int = 300
    # Figure l: the chaos soak's session length, a fault every so often, how many faults.
    chaos_s: float = 600
    chaos_every_s: float = 60
    chaos_faults: int = 9
    many_s: float = 60  # figure m's run
    figures: set[str] = field(default_factory=set)


FULL = Plan(repeats=3, throughput_s=10, open_s=20, closed_users=100, closed_s=60,
            latency_s=10, stops=5, footprint_s=240, viewers_s=20)  # fmt: skip
QUICK = Plan(repeats=1, throughput_s=5, open_s=4, closed_users=300, closed_s=12, latency_s=4,
             stops=1, footprint_s=20, viewers_s=8, downsample_interval_s=3600, chaos_s=180,
             chaos_every_s=45, chaos_faults=3, many_s=30)  # fmt: skip
MANY_USERS = 20_000  # figure m: closed-model users in one worker process
# Started over 5 s (ramp_up_seconds), as one would: 20,000 users sending in the same
# millisecond need 20,000 sockets at once, more than many machines allow a process.
MANY_USERS_RAMP_S = 5.0
VIEWERS = 200  # open dashboards of one session on one web process (figure j)
SIMULATED_DAYS = 30  # figure k: a session running until stopped for a month


class Bench:
    def __init__(self, plan: Plan, cpus: tuple[int | None, int | None]) -> None:
        self.plan = plan
        self.generator_cpu, self.target_cpu = cpus
        self.rows: list[Row] = []
        self.ours_counts: list[tuple[int, int]] = []  # (our count, target's count)
        self.locust_counts: list[tuple[int, int]] = []

    def wants(self, figure: str) -> bool:
        return figure in self.plan.figures

    # --- our side ------------------------------------------------------------------------------

    def ours(self, **spec) -> dict:
        command = [sys.executable, "-m", "bench.shard_process", json.dumps(spec)]
        result = subprocess.run(pinned(command, self.generator_cpu), cwd=ROOT,
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"shard process failed: {result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def ours_against(self, counting: CountingTarget, delay_ms: float = 0, **spec) -> dict:
        counting.reset(delay_ms)
        outcome = self.ours(url=counting.url, **spec)
        target = counting.stats()
        self.ours_counts.append((outcome["requests"], target["count"]))
        return {**outcome, "target": target}

    # --- figures ---------------------------------------------------------------------------------

    def throughput(self, nginx: Nginx) -> None:
        ours, traced, locust, wrk = [], [], [], []
        for _ in range(self.plan.repeats):
            seconds = self.plan.throughput_s
            ours.append(self.ours(url=nginx.url, users=50, seconds=seconds)["requests"] / seconds)
            # The APM's extras: the session's header (in the prepared bytes) and a fresh
            # traceparent spliced into them per request.
            apm = {"session_header": "X-Load-Test-Session", "traceparent": True}
            outcome = self.ours(url=nginx.url, users=50, seconds=seconds, **apm)
            traced.append(outcome["requests"] / seconds)
            locust.append(peers.run_locust(nginx.url, 50, seconds, self.generator_cpu)["rps"])
            # wrk (C, one thread, 50 connections) on the same core: the practical limit of one
            # core against this nginx, so our figure reads as a share of what is possible.
            wrk.append(peers.run_wrk(nginx.url, 50, seconds, self.generator_cpu)["rps"])
        ratio = statistics.median(ours) / statistics.median(locust)
        share = statistics.median(ours) / statistics.median(wrk)
        traced_ratio = statistics.median(traced) / statistics.median(ours)
        self.rows += [
            Row("a", "one worker process, 50 users, no think time, vs nginx", ours, "req/s"),
            Row("a", "same with the session header and a traceparent per request", traced, "req/s"),
            Row(
                "a",
                "ratio traceparent / fixed request",
                [traced_ratio],
                "x",
                "≥ 0.9x",
                traced_ratio >= 0.9,
            ),
            Row("a", "Locust FastHttpUser, 1 process, 50 users", locust, "req/s"),
            Row("a", "wrk, 1 thread, 50 connections (one core's practical limit)", wrk, "req/s"),
            Row("a", "ratio ours / Locust", [ratio], "x", "≥ 1.5x", ratio >= 1.5),
            Row("a", "ours as a share of wrk", [share * 100], "%"),
        ]

    def checks_cost(self, nginx: Nginx) -> None:
        """Figure n: what response checks cost the hot loop. The same JSON answer, read by
        an endpoint without checks and by one with two that read its body."""
        checks = [{"type": "body_contains", "value": '"ok"'},
                  {"type": "json_path_equals", "path": "$.items[0].id", "value": 7}]  # fmt: skip
        url, seconds = nginx.url + "json", self.plan.throughput_s
        plain, checked = [], []
        for _ in range(self.plan.repeats):
            plain.append(self.ours(url=url, users=50, seconds=seconds)["requests"] / seconds)
            outcome = self.ours(url=url, users=50, seconds=seconds, checks=checks)
            if outcome["failures"]:
                raise RuntimeError(f"figure n: the checks failed {outcome['failures']} answers")
            checked.append(outcome["requests"] / seconds)
        ratio = statistics.median(checked) / statistics.median(plain)
        self.rows += [
            Row("n", "one worker process, 50 users, a JSON answer, no checks", plain, "req/s"),
            Row("n", "same, 2 checks (body_contains + json_path_equals)", checked, "req/s"),
            # No goal: the figure says what two checks cost (mostly parsing the JSON body).
            Row("n", "ratio with checks / without", [ratio], "x"),
        ]

    def templating_cost(self, nginx: Nginx) -> None:
        """Figure o: what request templates cost the hot loop. The same POST, its path, query,
        a header and its body fixed, then templated (rendered per request by the shard, as
        ``templated_requests.compile_request`` builds it), in turns, against nginx. nginx
        answers a path whose placeholders were not rendered with a 500: the figure then
        refuses to print a ratio of two fixed requests."""
        templated = {
            "url": nginx.url + 'items/{{ random_int(1, 5000) }}?q={{ choice("a","b","c") }}',
            "headers": {"X-Request": "{{ seq() }}"},
            "body": '{"id": "{{ uuid() }}"}',
        }
        # The same bytes, give or take a digit: a 4-digit path and a 36-character id.
        fixed = {"url": nginx.url + "items/2500?q=b", "headers": {"X-Request": "1000"},
                 "body": '{"id": "1b4e28ba-2fa1-4d2e-883f-0016d3cca427"}'}  # fmt: skip
        # The issue's own example, the seed's search with a fragment that varies per request:
        # one placeholder, what the templating machinery costs with little value to make.
        one = {**fixed, "url": nginx.url + "items/{{ random_int(1, 5000) }}?q=b"}
        # Many short runs in turns, the order reversed every other round, each ratio taken
        # between runs of the same round: a neighbour's burst or a slow drift of the machine
        # then moves both sides of a ratio alike (whole runs compared by their medians moved
        # the figure by ±15 % from one run to the next).
        rounds, seconds = 2 * self.plan.repeats, self.plan.throughput_s / 2
        kinds = {"fixed": fixed, "templated": templated, "one": one}
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        cpu_us: dict[str, list[float]] = {kind: [] for kind in kinds}
        for number in range(rounds):
            order = list(kinds) if number % 2 == 0 else list(reversed(kinds))
            for kind in order:
                outcome = self.ours(method="POST", users=50, seconds=seconds, **kinds[kind])
                if outcome["failures"] or not outcome["requests"]:
                    raise RuntimeError(
                        f"figure o: {outcome['failures']} of {outcome['requests']} {kind} "
                        "requests failed (a 500 from nginx: placeholders sent unrendered, the "
                        "shard does not use templated_requests.compile_request)"
                    )
                rates[kind].append(outcome["requests"] / seconds)
                cpu_us[kind].append(outcome["cpu_s"] * 1e6 / outcome["requests"])
        ratio = statistics.median(
            t / f for t, f in zip(rates["templated"], rates["fixed"], strict=True)
        )
        one_ratio = statistics.median(
            o / f for o, f in zip(rates["one"], rates["fixed"], strict=True)
        )
        fixed_us, templated_us, one_us = (statistics.median(cpu_us[kind]) for kind in cpu_us)
        self.rows += [
            Row("o", "one worker process, 50 users, a POST with fixed path, header and body",
                rates["fixed"], "req/s"),
            Row("o", "same templated: random_int + choice in the path and query, seq() in a "
                "header, uuid() in the body", rates["templated"], "req/s"),
            Row("o", f"ratio templated / fixed (median of {rounds} paired rounds)", [ratio], "x",
                "≥ 0.9x", ratio >= 0.9,
                f"CPU per request {fixed_us:.1f} µs fixed, {templated_us:.1f} µs templated "
                f"(ratio {fixed_us / templated_us:.2f}: what a busy neighbour does not blur)"),
            Row("o", "same with one placeholder only, random_int in the path", rates["one"],
                "req/s"),
            Row("o", "ratio one placeholder / fixed", [one_ratio], "x", "",
                note=f"CPU per request {one_us:.1f} µs"),
        ]  # fmt: skip

    def open_model(self, counting: CountingTarget) -> None:
        for rate in (200, 1000):
            errors = []
            for _ in range(self.plan.repeats):
                outcome = self.ours_against(counting, users=100, rps=rate,
                                            seconds=self.plan.open_s)  # fmt: skip
                target = outcome["target"]
                expected = (target["last"] - target["first"]) * rate + 1
                errors.append(abs(target["count"] / expected - 1) * 100)
            self.rows.append(Row("b", f"open model at {rate} req/s for {self.plan.open_s:g} s: "
                                 "rate error at the target", errors, "%", "≤ 1%",
                                 max(errors) <= 1.0))  # fmt: skip

    def closed_model(self, counting: CountingTarget) -> None:
        users, seconds = self.plan.closed_users, self.plan.closed_s
        outcome = self.ours_against(counting, users=users, think_min=1.0, think_max=5.0,
                                    seconds=seconds)  # fmt: skip
        received = outcome["target"]["count"]
        predicted, chance = closed_model_prediction(users, seconds, outcome["mean_ms"])
        error = abs(received / predicted - 1) * 100
        self.rows.append(Row("c", f"closed model, {users} users, think U(1,5) s, {seconds:g} s: "
                             f"{received} sent vs {predicted:.0f} predicted",
                             [error], "%", "≤ 3%", error <= 3.0,
                             f"chance alone: ±{chance:.1f}% (1 sd)"))  # fmt: skip

    def many_users(self, counting: CountingTarget) -> None:
        """Figure m: 20,000 closed-model users in one worker process: what a user costs."""
        users, seconds, ramp_s = MANY_USERS, self.plan.many_s, MANY_USERS_RAMP_S
        outcome = self.ours_against(counting, users=users, think_min=1.0, think_max=5.0,
                                    ramp_s=ramp_s, seconds=seconds,
                                    rss_at_s=[seconds - 1])  # fmt: skip
        received = outcome["target"]["count"]
        # A ramp starts user i at ramp * i / users: on average the users run half a ramp less.
        # A user's cycle is its think time plus its answer's time: the mean one, as a long
        # tail (a target at its limit) lengthens cycles by the mean, not the median.
        predicted, chance = closed_model_prediction(users, seconds - ramp_s / 2, outcome["mean_ms"])
        error = abs(received / predicted - 1) * 100
        rss_mb = outcome["rss_samples"][-1][1] / 2**20 if outcome["rss_samples"] else float("nan")
        base_mb = outcome["rss_at_start"] / 2**20
        per_user_kb = (rss_mb - base_mb) * 1024 / users
        self.rows += [
            Row("m", f"{users:,} users, think U(1,5) s, ramp {ramp_s:g} s, one worker process, "
                f"{seconds:g} s: "
                f"worker RSS ({base_mb:.0f} MB before the users)", [rss_mb], "MB", "≤ 300 MB",
                rss_mb <= 300, f"{per_user_kb:.1f} KB per user"),
            Row("m", f"same: {received} sent vs {predicted:.0f} predicted", [error], "%",
                "≤ 3%", error <= 3.0,
                f"chance alone: ±{chance:.1f}% (1 sd); answers p50 "
                f"{outcome['p50_ms'] or 0:.1f} / mean {outcome['mean_ms'] or 0:.1f} / p99 "
                f"{outcome['p99_ms'] or 0:.1f} ms; CPU: generator "
                f"{outcome['cpu_percent'] or 0:.0f}%, target "
                f"{outcome['target'].get('cpu_percent', 0):.0f}%; "
                f"{outcome['connections_opened']} connections opened; failures "
                f"{outcome['failures_by_class'] or 'none'}"),
        ]  # fmt: skip

    def latency(self, counting: CountingTarget) -> None:
        seconds = self.plan.latency_s
        p50, p99, ref50, ref99, loc50, loc99 = [], [], [], [], [], []
        for _ in range(self.plan.repeats):
            counting.reset(50)
            wrk = peers.run_wrk(counting.url, 20, seconds, self.generator_cpu)
            ref50.append(wrk["p50_ms"])
            ref99.append(wrk["p99_ms"])
            outcome = self.ours_against(counting, delay_ms=50, users=20, seconds=seconds)
            p50.append(outcome["p50_ms"])
            p99.append(outcome["p99_ms"])
            counting.reset(50)
            locust = peers.run_locust(counting.url, 20, seconds, self.generator_cpu)
            self.locust_counts.append((locust["requests"], counting.stats()["count"]))
            loc50.append(locust["p50_ms"])
            loc99.append(locust["p99_ms"])
        d50 = abs(statistics.median(p50) - statistics.median(ref50))
        d99 = abs(statistics.median(p99) - statistics.median(ref99))
        self.rows += [
            Row("d", "20 users vs a 50 ms target: wrk p50 / p99 (reference)", list(ref50),
                "ms p50", note=f"p99 {_fmt(statistics.median(ref99))} ms"),
            Row("d", "ours p50 / p99", p50, "ms p50",
                note=f"p99 {_fmt(statistics.median(p99))} ms"),
            Row("d", "Locust p50 / p99", loc50, "ms p50",
                note=f"p99 {_fmt(statistics.median(loc99))} ms (Locust rounds)"),
            Row("d", "ours - wrk, p50", [d50], "ms", "≤ 1.5 ms", d50 <= 1.5),
            Row("d", "ours - wrk, p99", [d99], "ms", "≤ 3 ms", d99 <= 3.0),
        ]  # fmt: skip

    def count_truth(self) -> None:
        exact = sum(1 for ours, target in self.ours_counts if ours == target)
        self.rows.append(Row("e", f"ours: count = target's count in {exact} of "
                             f"{len(self.ours_counts)} runs",
                             [exact / max(len(self.ours_counts), 1) * 100], "%", "100%",
                             exact == len(self.ours_counts)))  # fmt: skip
        if self.locust_counts:
            lost = [target - locust for locust, target in self.locust_counts]
            self.rows.append(
                Row(
                    "e",
                    "Locust: requests the target got that Locust did not count",
                    lost,
                    "per run",
                    note="peer, for comparison",
                )
            )

    def footprint_rss(self, nginx: Nginx) -> None:
        seconds = self.plan.footprint_s
        first = 60.0 if seconds > 90 else seconds / 3
        outcome = self.ours(url=nginx.url, users=50, seconds=seconds,
                            rss_at_s=[first, seconds - 1])  # fmt: skip
        (_, early), (_, late) = outcome["rss_samples"]
        growth = (late / early - 1) * 100
        self.rows.append(Row("h", f"worker RSS at full rate: {early / 2**20:.0f} MB at "
                             f"{first:g} s → {late / 2**20:.0f} MB at {seconds - 1:g} s",
                             [growth], "%", "< 5%", growth < 5,
                             "the goal's 10-minute run: --footprint-minutes 10"))  # fmt: skip

    def full_stack(self, counting: CountingTarget) -> None:
        from .stack import Stack

        seconds = 30 if self.plan.repeats > 1 else 12
        with Stack(workers=2) as stack:
            stops, estops, starts = [], [], []
            for _ in range(self.plan.stops):
                for emergency in (False, True):
                    outcome = stack.stop_timing(counting, emergency=emergency)
                    (estops if emergency else stops).append(outcome["stop_s"])
                    starts.append(outcome["start_s"])
                    self.ours_counts.append((outcome["ours"], outcome["target"]))
            saturated: dict[bool, list[dict]] = {False: [], True: []}
            for _ in range(self.plan.stops):
                for emergency in (False, True):
                    outcome = stack.saturated_stop_timing(counting, emergency=emergency)
                    saturated[emergency].append(outcome)
                    self.ours_counts.append((outcome["ours"], outcome["target"]))
            rows_fast = stack.rows_per_minute(counting, users=50, think=(0, 0), seconds=seconds)
            rows_slow = stack.rows_per_minute(counting, users=10, think=(0.5, 1.0),
                                              seconds=seconds)  # fmt: skip
            for rows in (rows_fast, rows_slow):
                self.ours_counts.append((rows["ours"], rows["target"]))
        self.rows += [
            Row("f", "stop at full rate, 2 workers: last request after the call returned",
                stops, "s", "≤ 0.25 s (median)", statistics.median(stops) <= 0.25),
            Row("f", "emergency stop, same", estops, "s", "≤ 0.25 s (median)",
                statistics.median(estops) <= 0.25),
            *(
                Row("f", f"{what} on a saturated target (every answer held, 50 users): call → "
                    "session stopped", [o["ended_s"] for o in saturated[emergency]], "s",
                    "≤ 1 s (median)",
                    statistics.median(o["ended_s"] for o in saturated[emergency]) <= 1.0,
                    f"failures the stop added: {sum(o['failures'] for o in saturated[emergency])}")
                for emergency, what in ((False, "stop"), (True, "emergency stop"))
            ),
            Row("g", "start call → first request at the target", starts, "s", "≤ 1 s",
                statistics.median(starts) <= 1.0),
            Row("h", f"DB rows per minute per session: {rows_fast['rps']:.0f} req/s vs "
                f"{rows_slow['rps']:.0f} req/s", [rows_fast["rows_per_min"],
                rows_slow["rows_per_min"]], "rows/min", "independent of rate",
                abs(rows_fast["rows_per_min"] / rows_slow["rows_per_min"] - 1) < 0.2),
        ]  # fmt: skip

    def viewers(self, counting: CountingTarget) -> None:
        from .stack import Stack

        with Stack(workers=2, web=True) as stack:
            quiet = stack.viewers_timing(counting, 0, self.plan.viewers_s)
            watched = stack.viewers_timing(counting, VIEWERS, self.plan.viewers_s)
        for outcome in (quiet, watched):
            self.ours_counts.append((outcome["ours"], outcome["target"]))
        lag_ratio = watched["lag_s"] / quiet["lag_s"]
        rss_per_viewer_kb = (watched["web_rss"] - quiet["web_rss"]) / VIEWERS / 1024
        self.rows += [
            Row("j", "statistics lag a viewer sees (target's count → its stream), 0 viewers",
                [quiet["lag_s"]], "s"),
            Row("j", f"same with {VIEWERS} viewers of the session on one web process",
                [watched["lag_s"]], "s",
                note=f"each viewer got ≥ {watched['fewest_snapshots']} snapshots"),
            Row("j", f"lag ratio {VIEWERS} / 0 viewers", [lag_ratio], "x", "≤ 1.25x",
                lag_ratio <= 1.25),
            Row("j", f"stop: last request after the call returned, 0 / {VIEWERS} viewers",
                [quiet["stop_s"], watched["stop_s"]], "s", "≤ 0.25 s each",
                max(quiet["stop_s"], watched["stop_s"]) <= 0.25),
            Row("j", f"web RSS with {VIEWERS} viewers", [watched["web_rss"] / 2**20], "MB",
                note=f"{quiet['web_rss'] / 2**20:.0f} MB with none: "
                f"{rss_per_viewer_kb:.0f} KB per viewer; "
                f"{watched['redis_connections_per_viewer']:.1f} Redis connections per stream"),
        ]  # fmt: skip

    def control_plane(self) -> None:
        from .stack import monitor_capacity

        small, large = monitor_capacity(50), monitor_capacity(500)
        self.rows += [
            Row("i", "monitor tick, 50 shards flushing: DB queries", [small["queries"]],
                "queries"),
            Row("i", "monitor tick, 500 shards flushing: DB queries", [large["queries"]],
                "queries", "flat as shards grow", large["queries"] <= small["queries"]),
            Row("i", "500 shards: statistics lag (tick interval + tick time)", [large["lag_s"]],
                "s", "< 2 s", large["lag_s"] < 2.0),
        ]  # fmt: skip

    def downsampling(self) -> None:
        from .downsampling import simulate

        month = simulate(SIMULATED_DAYS, self.plan.downsample_interval_s)
        by_resolution = month["by_resolution"]
        # The bound: the last hour per second, TIMESERIES_MINUTE_DAYS per minute, the rest
        # per hour, whatever the request rate.
        bound = 3600 + 1440 * 7 + 24 * (SIMULATED_DAYS - 7)
        every = f"every {month['interval_s']} simulated s"
        self.rows += [
            Row("k", f"time-series rows of one session after {SIMULATED_DAYS} days (simulated)",
                [month["rows_kept"]], "rows", f"≤ {bound:,} (1 h per s, 7 d per min, per h)",
                month["rows_kept"] <= bound,
                note=f"{by_resolution[1]:,} per s + {by_resolution[60]:,} per min + "
                f"{by_resolution[3600]:,} per h; without downsampling "
                f"{month['rows_written']:,} rows "
                f"({month['rows_written'] / month['rows_kept']:.0f}x more)"),
            Row("k", "totals after downsampling equal the per-second totals",
                [100.0 if month["totals_exact"] else 0.0], "%", "exact", month["totals_exact"],
                note="requests and failures summed over all points, before and after"),
            Row("k", f"downsampler run ({every}), median", [month["run_median_s"]], "s",
                "max ≤ 1 s", month["run_max_s"] <= 1.0,
                note=f"max {month['run_max_s']:.2f} s; {month['runs']:,} runs, "
                f"{month['runs_total_s']:.0f} s in all for {SIMULATED_DAYS} days"),
        ]  # fmt: skip

    def chaos(self, counting: CountingTarget, embedded_redis: EmbeddedRedis) -> None:
        from .chaos import RATE, ChaosSoak
        from .stack import Stack

        plan = self.plan
        with Stack(workers=2, web=True) as stack:
            soak = ChaosSoak(stack, counting, embedded_redis).run(
                plan.chaos_s, plan.chaos_every_s, plan.chaos_faults
            )
        for fault in soak["faults"]:
            back = fault.back_s
            self.rows.append(Row(
                "l", f"fault at {fault.at_s:.0f} s: SIGKILL {fault.kind}"
                if fault.kind != "redis" else f"fault at {fault.at_s:.0f} s: Redis restarted "
                "empty", [] if back is None else [back], "s to 90% rate",
                "≤ 15 s", back is not None and back <= 15,
                f"{fault.detail + '; ' if fault.detail else ''}"
                + ("replacement started (no ping to wait for)" if fault.replaced_s is None
                   else f"replacement answered after {fault.replaced_s:.1f} s")
                + f"; lowest rate {fault.lowest_rps:.0f} req/s"))  # fmt: skip
        lost = soak["target"] - soak["ours"]
        self.rows += [
            Row("l", f"soak of {plan.chaos_s / 60:g} min at {RATE:g} req/s (open model): "
                "final status", [], "", "completed",
                (soak["status"], soak["end_reason"]) == ("completed", "completed"),
                f"{soak['status']} / {soak['end_reason']} after {soak['seconds']:.0f} s"),
            Row("l", f"requests the target received ({soak['target']:,}) - the session's "
                f"total ({soak['ours']:,})", [lost], "requests",
                f"0 ≤ lost ≤ {soak['bound']:,.0f} (docs bound)",
                0 <= lost <= soak["bound"],
                f"{lost / max(soak['target'], 1) * 100:.2f}% of the traffic"),
        ]  # fmt: skip


def header(cpus, bench_tools: dict) -> list[str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    generator, target = cpus
    pinning = (f"generators on CPU {generator}, targets on CPU {target} (taskset)"
               if generator is not None else "not pinned (one core)")  # fmt: skip
    return [
        f"- machine: {platform.machine()}, nproc {os.cpu_count()}, {pinning}",
        ", ".join(
            [
                f"- Python {platform.python_version()}",
                f"commit {commit or 'unknown'}",
                *(f"{name} {version}" for name, version in bench_tools.items()),
            ]
        ),
    ]


def open_files_for_many_users() -> None:
    """Figure m's 20,000 users all send at once at the start: a socket each in the generator
    and in the target. The processes take their soft limit up to the hard one themselves;
    this raises the hard one (root only) for the children started after it."""
    wanted = MANY_USERS * 3
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
        except (ValueError, OSError):
            print(f"figure m: open files limited to {hard}; run as root or raise `ulimit -Hn`",
                  file=sys.stderr)  # fmt: skip


def closed_model_prediction(
    users: int, seconds: float, answer_ms: float | None
) -> tuple[float, float]:
    """What a closed model with think time U(1,5) s should send in ``seconds``, and the
    spread chance alone gives it (in percent, one standard deviation).

    Each user sends at 0, then after every think + answer: a renewal process whose expected
    count is 1 + t/mu + (sigma^2 - mu^2) / (2 mu^2); its variance is about sigma^2 t / mu^3.
    """
    mu = 3.0 + (answer_ms or 0) / 1000
    variance = (5.0 - 1.0) ** 2 / 12
    predicted = users * (1 + seconds / mu + (variance - mu**2) / (2 * mu**2))
    chance = (users * variance * seconds / mu**3) ** 0.5 / predicted * 100
    return predicted, chance


def render(rows: list[Row], lines: list[str]) -> str:
    table = ["| # | figure | measured: median (min-max) | goal | verdict | note |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    table += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    missed = [row for row in rows if row.met is False]
    if missed:
        summary = f"**{len(missed)} goal(s) missed:** " + "; ".join(
            f"{row.figure} ({row.what})" for row in missed
        )
    else:
        summary = "All goals met."
    return "\n".join([*lines, "", *table, "", summary])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each figure once, short")
    parser.add_argument("--smoke", action="store_true", help="b, c, e on the counting target")
    parser.add_argument("--only", default="", help="figures to run, e.g. a,d")
    parser.add_argument("--footprint-minutes", type=float, default=None)
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args(argv)

    plan = QUICK if (args.quick or args.smoke) else FULL
    if args.smoke:
        plan = Plan(repeats=1, throughput_s=0, open_s=3, closed_users=40, closed_s=8,
                    latency_s=0, stops=0, footprint_s=0)  # fmt: skip
    plan.figures = set(args.only.split(",")) if args.only else set("abcdefghijklmno")
    if args.smoke:
        plan.figures = {"b", "c", "e"}
    if args.footprint_minutes:
        plan.footprint_s = args.footprint_minutes * 60
    cpus = (0, 1) if (os.cpu_count() or 1) >= 2 else (None, None)
    if plan.figures & {"m"}:
        open_files_for_many_users()

    needs_peers = bool(plan.figures & {"a", "d", "h", "n", "o"})
    missing = ensure_tools() if needs_peers else []
    if missing:
        print(f"Cannot run figures a, d, h, n, o without {', '.join(missing)}.", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-") as workdir, EmbeddedRedis() as redis:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="loadtest_project.settings",
            DATA_DIR=workdir,
            DATABASE_URL=f"sqlite:///{workdir}/bench.sqlite3",
            REDIS_URL=redis.url,
            LOG_LEVEL="ERROR",
            ALLOWED_TARGET_HOSTS="127.0.0.1:*",  # the bench's targets take any free port
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        bench = Bench(plan, cpus)
        started = time.monotonic()
        with CountingTarget(cpus[1]) as counting:
            if bench.wants("b"):
                bench.open_model(counting)
            if bench.wants("c"):
                bench.closed_model(counting)
            if bench.wants("m"):
                bench.many_users(counting)
            if bench.wants("d"):
                bench.latency(counting)
            if plan.figures & {"f", "g"}:
                bench.full_stack(counting)
            if needs_peers and plan.figures & {"a", "h", "n", "o"}:
                with Nginx(cpus[1]) as nginx:
                    if bench.wants("a"):
                        bench.throughput(nginx)
                    if bench.wants("n"):
                        bench.checks_cost(nginx)
                    if bench.wants("o"):
                        bench.templating_cost(nginx)
                    if bench.wants("h"):
                        bench.footprint_rss(nginx)
            if bench.wants("j"):
                bench.viewers(counting)
            if bench.wants("i"):
                bench.control_plane()
            if bench.wants("l"):
                bench.chaos(counting, redis)
            if bench.wants("e"):
                bench.count_truth()
            if bench.wants("k"):
                bench.downsampling()
        tools = peers.versions() if needs_peers else {}
        if needs_peers:
            tools["nginx"] = Nginx(None).version()
        lines = header(cpus, tools)
        lines.append(f"- mode: {'smoke' if args.smoke else 'quick' if args.quick else 'full'}"
                     f", {time.monotonic() - started:.0f} s")  # fmt: skip
        report = render(bench.rows, lines)
    print(report)
    if args.output:
        Path(args.output).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
