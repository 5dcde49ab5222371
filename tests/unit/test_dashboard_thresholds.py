"""Thresholds on the dashboard: typed one per line in the New-session form (judged by the
API's rules, errors beside the textarea), prefilled by Clone, and their verdicts in a table
on the session page."""

import pytest

from apps.sessions.models import LoadTestSession

from ..support.forms import browser_for, form_body
from .test_dashboard_pages import target  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def test_the_form_stores_one_threshold_per_line(operator, target):  # noqa: F811
    body = form_body(target, thresholds="p95_ms < 500\r\n\r\n  slow: error_rate < 0.01 abort \n")
    response = browser_for(operator).post("/sessions/new/", body)
    assert response.status_code == 302
    assert LoadTestSession.objects.get().thresholds == [
        "p95_ms < 500",
        "slow: error_rate < 0.01 abort",
    ]


def test_a_bad_threshold_is_named_beside_the_textarea_and_nothing_is_stored(operator, target):  # noqa: F811
    body = form_body(target, thresholds="p95_ms < 500\nnope: p95_ms < 1\n<script>x</script>")
    response = browser_for(operator).post("/sessions/new/", body)
    page = response.content.decode()
    assert response.status_code == 400
    assert "Threshold 2: unknown endpoint &#x27;nope&#x27; (this target has: fast, slow)." in page
    assert "<script>x</script>" not in page  # typed text is escaped, as every value is
    assert 'id="id_thresholds" name="thresholds"' in page and "is-invalid" in page
    assert not LoadTestSession.objects.exists()


def test_clone_prefills_the_thresholds(operator, target):  # noqa: F811
    source = LoadTestSession.objects.create(
        session_name="base", target=target, thresholds=["p95_ms < 500", "rps > 3"]
    )
    page = browser_for(operator).get(f"/sessions/new/?clone={source.pk}").content.decode()
    assert "p95_ms &lt; 500\nrps &gt; 3</textarea>" in page


def test_the_session_page_shows_each_verdict(viewer, target):  # noqa: F811
    session = LoadTestSession.objects.create(
        session_name="judged", target=target, thresholds=["p95_ms < 500", "rps > 3 abort"],
        status="stopped",
        threshold_results=[
            {"expression": "p95_ms < 500", "scope": None, "metric": "p95_ms", "observed": 12.25,
             "passed": True, "note": "", "evaluated_at": "", "aborted": False, "final": True},
            {"expression": "rps > 3 abort", "scope": None, "metric": "rps", "observed": 1.5,
             "passed": False, "note": "", "evaluated_at": "", "aborted": True, "final": True},
        ],
    )  # fmt: skip
    page = browser_for(viewer).get(f"/sessions/{session.pk}/").content.decode()
    table = page[page.index('data-testid="threshold-table"') :].split("</table>")[0]
    assert "<code>p95_ms &lt; 500</code>" in table and "pass</span>" in table and "12.25" in table
    assert 'fail</span> <span class="small">stopped the session' in table and "1.5" in table
    # The live snapshot carries the verdicts for the page's script.
    pending = LoadTestSession.objects.create(session_name="p", target=target,
                                             thresholds=["p95_ms < 500"])  # fmt: skip
    page = browser_for(viewer).get(f"/sessions/{pending.pk}/").content.decode()
    assert "not judged yet" in page
    assert '"threshold_results": []' in page
