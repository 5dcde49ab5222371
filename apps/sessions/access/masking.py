"""Who may read an endpoint's secrets, and the one way every read surface masks them.

An endpoint's headers, body and URL may carry credentials (a bearer token, a password field,
``?api_key=``). Whoever may edit the catalog must be able to see and keep them; everyone else
(viewers, operators) reads the configuration with every header value and every secret-looking
value of the body and query string replaced by ``[redacted]``. Every surface masks through
here: the admin asks ``may_see_secrets`` (its editors edit the real values); the API masks
for every role unless an editor asks ``?reveal=true``, so a script listing the catalog never
prints a secret by accident; ``/stats/``, the live stream's snapshots and the dashboard mask
for everyone, since one snapshot per session is shared by every viewer and no page edits an
endpoint.

The values are found by ``apps.workers.secrets`` (the engine masks error samples with the
same list), so a secret is recognised the same way wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apps.workers.plan import Plan, PlanVersionError
from apps.workers.secrets import REDACTED, endpoint_secrets, mask_secrets, plan_secrets

# Whoever may change endpoints writes their secrets, so may read them back.
REVEAL_SECRETS = "loadtests.change_endpoint"


def may_see_secrets(user) -> bool:
    """True for the system (``None``) and the roles that may edit endpoints."""
    return user is None or user.has_perm(REVEAL_SECRETS)


def masked_headers(headers: Mapping[str, Any] | None) -> dict:
    """Names kept, every value hidden: a header value is a credential as often as not
    (``X-Custom-Auth``), and masking by name would miss those."""
    return {name: REDACTED for name in (headers or {})}


def masked_request(headers: Mapping | None, body: str, url: str) -> tuple[dict, str, str]:
    """An endpoint's ``(headers, body, url)`` as a person without the reveal reads them."""
    secrets = endpoint_secrets(headers, body or "", url or "")
    return (
        masked_headers(headers),
        mask_secrets(body or "", secrets),
        mask_secrets(url or "", secrets),
    )


def masked_endpoint_url(endpoint) -> str:
    """An endpoint's URL (or path) with the secrets of its own request masked."""
    return masked_request(endpoint.headers, endpoint.body, endpoint.url)[2]


def kept_if_sent_back(sent: str, stored: str, headers: Mapping | None, url: str) -> str:
    """A client sending back a body or URL exactly as it read it masked keeps the stored
    value, so an edit round-trip never overwrites a secret with ``[redacted]``."""
    if REDACTED in sent and sent == mask_secrets(stored, endpoint_secrets(headers, stored, url)):
        return stored
    return sent


def masked_plan(plan: Mapping[str, Any] | None) -> Any:
    """A session's stored plan (its run configuration) with every endpoint's headers hidden
    and every secret masked wherever it recurs (a flow step, a feed row, a message)."""
    if not plan:
        return plan
    from_plan = plan_secrets(_read_plan(plan))
    masked = _mask_strings(plan, from_plan)
    for endpoint in masked.get("endpoints") or []:
        if isinstance(endpoint, dict):
            endpoint["headers"] = masked_headers(endpoint.get("headers"))
    return masked


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """Free text (a URL, a message) with these secrets masked, even cut short."""
    return mask_secrets(text or "", secrets, cut_short=True)


def _read_plan(plan: Mapping[str, Any]) -> Plan | None:
    try:
        return Plan.from_json(plan)
    except (PlanVersionError, KeyError, TypeError, ValueError):
        return None


def _mask_strings(value: Any, secrets: set[str]) -> Any:
    """A copy of a JSON value with the secrets masked in every string it holds."""
    if isinstance(value, str):
        return mask_secrets(value, secrets)
    if isinstance(value, Mapping):
        return {key: _mask_strings(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_strings(item, secrets) for item in value]
    return value
