"""The demo catalog (``data/default_endpoints.json`` and ``data/default_flows.json``) and
the default target at TARGET_APP_URL, which a new user's first session runs against."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.catalog.flows import steps_from_data
from apps.sessions.models import Endpoint, Flow, Target
from apps.sessions.validation import check_target_url

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "data" / "default_endpoints.json"
# The demo catalog's flows, by endpoint name (a file of its own beside the endpoints').
DEFAULT_FLOWS = Path(__file__).resolve().parent.parent / "data" / "default_flows.json"


# The catalog file speaks the API's language (``timeout``, as in /api/endpoints/); the code
# uses the model's names. Renamed here, once; a field the file leaves out takes the model's
# default.
CATALOG_TO_MODEL_FIELDS = {"timeout": "timeout_s"}


def default_catalog() -> list[dict]:
    """The default catalog's endpoints (the data file), by model field name."""
    return [
        {CATALOG_TO_MODEL_FIELDS.get(key, key): value for key, value in item.items()}
        for item in json.loads(DEFAULT_CATALOG.read_text())
    ]


def load_default_catalog(target: Target) -> int:
    """Add the demo app's endpoints (from the data file) that the target does not have yet."""
    created = 0
    for fields in default_catalog():
        name = fields.pop("name")
        _, was_created = Endpoint.objects.get_or_create(target=target, name=name, defaults=fields)
        created += was_created
    load_default_flows(target)
    return created


def default_flows() -> list[dict]:
    """The default catalog's flows (the data file), as catalog files write them."""
    return json.loads(DEFAULT_FLOWS.read_text())


def load_default_flows(target: Target) -> int:
    """Add the demo catalog's flows the target does not have yet, where it has every endpoint
    they call (a target whose catalog was changed keeps what it has)."""
    created = 0
    for item in default_flows():
        if target.flows.filter(name=item["name"]).exists():
            continue
        names = {step["endpoint"] for step in item["steps"]}
        if target.endpoints.filter(name__in=names).count() < len(names):
            continue
        flow = Flow(
            target=target,
            name=item["name"],
            weight=item.get("weight", 1.0),
            description=item.get("description", ""),
        )
        save_flow(flow, steps_from_data(target, item["steps"]), via="system")
        created += 1
    return created


def catalog_weights(target: Target) -> dict[str, float]:
    """Name -> default weight of what a session of ``target`` mixes: its endpoints and its
    flows (their names never clash)."""
    return target.mix_weights()


def find_default_target() -> Target | None:
    return Target.objects.filter(base_url=settings.TARGET_APP_URL).order_by("pk").first()


def default_catalog_weights() -> dict[str, float]:
    """Endpoint name -> weight of the default catalog, for validating before it exists."""
    default_weight = Endpoint._meta.get_field("weight").default
    return {fields["name"]: fields.get("weight", default_weight) for fields in default_catalog()}


def default_flow_weights() -> dict[str, float]:
    """Flow name -> weight of the default catalog, for validating before it exists."""
    return {item["name"]: item.get("weight", 1.0) for item in default_flows()}


def default_target() -> Target:
    """The target at TARGET_APP_URL, created with the default catalog on first use."""
    target = find_default_target()
    if target is not None:
        return target
    check_target_url(settings.TARGET_APP_URL)
    with transaction.atomic():
        name = "Default target"
        if Target.objects.filter(name=name).exists():
            name = f"Default target ({settings.TARGET_APP_URL})"
        target = Target.objects.create(
            name=name,
            base_url=settings.TARGET_APP_URL,
            description="The application at TARGET_APP_URL, with the demo app's endpoints.",
        )
        load_default_catalog(target)
    return target
