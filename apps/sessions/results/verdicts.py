"""A session's thresholds judged on its stored figures (``figures.py``).

Live, a threshold is judged only once its scope has THRESHOLD_MIN_REQUESTS requests (a
handful of requests says little about a p95); what a failure then does (stop the session,
tell the webhooks) is the lifecycle's business (``lifecycle/judging.py``)."""

from __future__ import annotations

from django.conf import settings

from apps.sessions.models import LoadTestSession
from apps.sessions.results.figures import figures_by_scope
from apps.sessions.results.thresholds import Verdict, judge, parse_thresholds


def judge_session(session: LoadTestSession, *, final: bool) -> list[Verdict]:
    thresholds = parse_thresholds(session.thresholds or [])
    if not thresholds:
        return []
    figures = figures_by_scope(session)
    return [
        judge(threshold, figures, final=final, min_requests=settings.THRESHOLD_MIN_REQUESTS)
        for threshold in thresholds
    ]
