"""Templates and data feeds as a real shard sends them: what arrives at a real server on
127.0.0.1 is what the template says, per user and per iteration. The shard runs in this
process (``tests/support/engine.py``: real Redis, real sockets); the server keeps the headers."""

import re
from collections import defaultdict

import pytest

from apps.workers.plan import EndpointPlan, FeedPlan, Plan

from ..support.engine import shard_in_thread, totals
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration]

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def templated(url, headers=None, body=""):
    return EndpointPlan(name="t", method="POST", url=url, timeout_s=5, weight=1.0,
                        headers=headers or {}, body=body)  # fmt: skip


def send(redis_client, redis_url, server, plan, requests, users=3):
    with shard_in_thread(redis_client, redis_url, plan, users=users) as (session, _):
        wait_until(lambda: server.total >= requests, timeout_s=20)
    figures = totals(redis_client, session)
    assert figures[0].failures == 0, figures[0].failures_by_class
    return figures


def plan_of(endpoint, feed=None):
    return Plan(endpoints=(endpoint,), request_interval_min=0.001, request_interval_max=0.002,
                feed=feed)  # fmt: skip


def test_functions_render_fresh_values_in_range_on_every_request(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.watch("X-Id", "X-Pick", "X-Time", "X-Text")
    endpoint = templated(
        counting_server.base_url + "/items/{{ random_int(1, 20) }}",
        {"X-Id": "{{ uuid() }}", "X-Pick": '{{ choice("alice", "bob", 7) }}',
         "X-Time": "{{ now_iso() }}", "X-Text": "{{ random_string(12) }}"},
    )  # fmt: skip
    send(redis_client, redis_url, counting_server, plan_of(endpoint), 200)

    paths = {path for path in counting_server.counts}
    assert paths <= {f"/items/{n}" for n in range(1, 21)}
    assert len(paths) >= 15  # 200 draws of 20: all but a few appear
    _, ids = counting_server.seen("X-Id")
    assert all(UUID.match(value) for value in ids) and len(set(ids)) == len(ids)
    _, picks = counting_server.seen("X-Pick")
    assert set(picks) == {"alice", "bob", "7"}
    _, times = counting_server.seen("X-Time")
    assert all(ISO.match(value) for value in times)
    _, texts = counting_server.seen("X-Text")
    assert all(re.fullmatch(r"[A-Za-z0-9]{12}", value) for value in texts)


def test_seq_counts_per_user_and_user_id_numbers_the_users(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.watch("X-User", "X-Seq")
    endpoint = templated(counting_server.base_url + "/s",
                         {"X-User": "{{ user_id }}", "X-Seq": "{{ seq() }}"})  # fmt: skip
    send(redis_client, redis_url, counting_server, plan_of(endpoint), 60, users=3)

    _, users = counting_server.seen("X-User")
    _, numbers = counting_server.seen("X-Seq")
    sequences = defaultdict(list)
    for user, number in zip(users, numbers, strict=False):
        sequences[user].append(int(number))
    assert set(sequences) == {"1", "2", "3"}
    for sequence in sequences.values():
        assert sequence == list(range(1, len(sequence) + 1))


def test_a_body_template_sets_its_own_content_length(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.echoes.add("/echo")
    counting_server.watch("Content-Length")
    endpoint = templated(counting_server.base_url + "/echo",
                         body='{"name": "{{ random_string(30) }}", "n": {{ seq() }}}')  # fmt: skip
    send(redis_client, redis_url, counting_server, plan_of(endpoint), 60)
    _, lengths = counting_server.seen("Content-Length")
    # 49 characters and n's digits: n grows past 9, and the length follows the rendered body
    # (a wrong length would leave the server waiting or reading the next request as body).
    assert {int(length) for length in lengths} == {50, 51}


FEED = FeedPlan(columns=("email", "plan"),
                rows=tuple((f"u{n}@example.com", "gold" if n % 2 else "free")
                           for n in range(1, 11)), mode="sequential")  # fmt: skip


def test_a_sequential_feed_hands_out_its_rows_in_order(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.watch("X-Email", "X-Plan")
    endpoint = templated(counting_server.base_url + "/f",
                         {"X-Email": "{{ feed.email }}", "X-Plan": "{{ feed.plan }}"})  # fmt: skip
    send(redis_client, redis_url, counting_server, plan_of(endpoint, FEED), 25, users=1)

    _, emails = counting_server.seen("X-Email")
    _, plans = counting_server.seen("X-Plan")
    expected = [f"u{n % 10 + 1}@example.com" for n in range(len(emails))]
    assert emails == expected  # in order, wrapping after the last row
    assert all((plan == "gold") == (int(email[1:-12]) % 2 == 1)
               for email, plan in zip(emails, plans, strict=False))  # fmt: skip


def test_a_random_feed_draws_rows_from_the_whole_feed_and_per_user_keeps_one(
    redis_client, redis_url, counting_server, forget_redis_sessions
):
    counting_server.watch("X-Email", "X-User")
    endpoint = templated(counting_server.base_url + "/f",
                         {"X-Email": "{{ feed.email }}", "X-User": "{{ user_id }}"})  # fmt: skip
    random_feed = FeedPlan(columns=FEED.columns, rows=FEED.rows, mode="random")
    send(redis_client, redis_url, counting_server, plan_of(endpoint, random_feed), 100, users=1)
    _, emails = counting_server.seen("X-Email")
    assert set(emails) <= {row[0] for row in FEED.rows} and len(set(emails)) >= 8
    assert emails[:10] != [row[0] for row in FEED.rows]  # not in order

    counting_server.watched["X-Email"], counting_server.watched["X-User"] = [], []
    per_user = FeedPlan(columns=FEED.columns, rows=FEED.rows, mode="per_user")
    send(redis_client, redis_url, counting_server, plan_of(endpoint, per_user), 200, users=3)
    _, emails = counting_server.seen("X-Email")
    _, users = counting_server.seen("X-User")
    pairs = set(zip(users, emails, strict=False))
    assert pairs == {("1", "u1@example.com"), ("2", "u2@example.com"), ("3", "u3@example.com")}
