"""The plan as Redis keeps it: signed by the control plane, and read by a shard only when the
signature holds and every URL (and Host header) is on the shard's own allow-list."""

import pytest

from apps.workers.plan import (
    EndpointPlan,
    Plan,
    PlanNotTrusted,
    plan_signing_key,
    read_trusted_plan,
    signed_plan_text,
)

KEY = plan_signing_key("the secret key")
ALLOWED = ("127.0.0.1:5001", "example.test")


def plan_to(url: str, headers=None) -> Plan:
    endpoint = EndpointPlan(name="a", method="GET", url=url, timeout_s=1.0, weight=1.0,
                            headers=headers or {})  # fmt: skip
    return Plan(endpoints=(endpoint,), request_interval_min=0.1, request_interval_max=0.2)


def test_a_signed_plan_on_the_allow_list_reads_back_the_same():
    plan = plan_to("http://127.0.0.1:5001/ping", {"Host": "example.test:80"})
    assert read_trusted_plan(signed_plan_text(plan, KEY), KEY, ALLOWED) == plan


@pytest.mark.parametrize(
    "stored",
    [
        signed_plan_text(plan_to("http://127.0.0.1:5001/"), plan_signing_key("another key")),
        signed_plan_text(plan_to("http://127.0.0.1:5001/"), KEY).replace(b"5001", b"6379"),
        signed_plan_text(plan_to("http://127.0.0.1:5001/"), KEY).partition(b".")[2],
        b"",
    ],
    ids=["other key", "changed text", "no signature", "empty"],
)
def test_a_plan_without_this_services_signature_is_refused(stored):
    with pytest.raises(PlanNotTrusted, match="signature does not match"):
        read_trusted_plan(stored, KEY, ALLOWED)


def test_the_key_is_derived_for_plans_only():
    assert plan_signing_key("the secret key") != b"the secret key"
    assert len(KEY) == 32


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://127.0.0.1:6379/", None),  # another port of an allowed host
        ("http://127.0.0.2:5001/", None),  # another host
        ("http://example.test:8080/", None),  # an entry without a port: the default only
        ("http://127.0.0.1:5001/", {"host": "127.0.0.1:6379"}),  # a Host header off the list
        ("http://127.0.0.1:99999/", None),  # not a URL
    ],
)
def test_a_signed_plan_that_leaves_the_allow_list_is_refused(url, headers):
    stored = signed_plan_text(plan_to(url, headers), KEY)
    with pytest.raises(PlanNotTrusted, match="ALLOWED_TARGET_HOSTS"):
        read_trusted_plan(stored, KEY, ALLOWED)
