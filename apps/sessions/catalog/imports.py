"""A target's catalog from a file (``loadtest import-endpoints``, a config file's catalog):
all or nothing, each entry checked as the admin and the API check it."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.sessions.access import config_history
from apps.sessions.access.permissions import CHANGE_CATALOG, require_permission
from apps.sessions.catalog.defaults import CATALOG_TO_MODEL_FIELDS
from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.catalog.flows import steps_from_data
from apps.sessions.models import Endpoint, Flow, Target

FLOW_FILE_FIELDS = ("name", "weight", "description", "steps")
ENDPOINT_FILE_FIELDS = ("name", "url", "method", "weight", "timeout", "description", "headers",
                        "body", "expected_statuses", "checks")  # fmt: skip


def _full_clean_under(instance, prefix: str) -> None:
    """``full_clean``, its field errors named under ``prefix`` (``target.name``,
    ``endpoints[2].weight``) so that a catalog file's error points at its entry."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {f"{prefix}.{name}": messages for name, messages in exc.message_dict.items()}
        ) from exc


def import_catalog(
    target_fields: Mapping[str, object],
    endpoints: list,
    user=None,
    via: str = "cli",
    flows: list | None = None,
) -> tuple[Target, int, int]:
    """Create or update a target (found by base URL, else made with ``target_fields``) and
    its endpoints (by name), all or nothing, each checked as the admin and the API check it;
    changes to existing endpoints go into the configuration history. Returns the target and
    how many endpoints were created and updated.

    Errors are keyed ``target`` or ``endpoints[N].field``: a file's reader can find them.
    ``flows`` (``[{name, weight, description, steps}]``, steps naming endpoints) are written
    after the endpoints, by name too (``flows[N].field``, ``flows[N].steps[i].field``).
    """
    for permission in CHANGE_CATALOG:
        require_permission(user, permission, "change the catalog of targets and endpoints")
    with transaction.atomic():
        base_url = target_fields.get("base_url")
        target = (
            Target.objects.filter(base_url=base_url).order_by("pk").first()
            if isinstance(base_url, str)
            else None
        )
        if target is None:
            target = Target(
                name=target_fields.get("name") or str(base_url)[:100],
                base_url=base_url,
                description=target_fields.get("description") or "",
            )
            _full_clean_under(target, "target")
            target.save()
        created = updated = 0
        for index, item in enumerate(endpoints):
            where = f"endpoints[{index}]"
            if not isinstance(item, Mapping):
                raise ValidationError({where: ["Must be an object with name, url, method..."]})
            unknown = sorted(str(key) for key in item if key not in ENDPOINT_FILE_FIELDS)
            if unknown:
                fields_text = ", ".join(ENDPOINT_FILE_FIELDS)
                raise ValidationError(
                    {f"{where}.{unknown[0]}": [f"Unknown field; the fields are {fields_text}."]}
                )
            fields = {CATALOG_TO_MODEL_FIELDS.get(key, key): value for key, value in item.items()}
            endpoint = Endpoint.objects.filter(target=target, name=fields.get("name")).first()
            before = config_history.snapshot(endpoint) if endpoint is not None else None
            if endpoint is None:
                endpoint = Endpoint(target=target)
            for name, value in fields.items():
                setattr(endpoint, name, value)
            _full_clean_under(endpoint, where)
            endpoint.save()
            if before is None:
                created += 1
            else:
                updated += bool(config_history.record_changes(endpoint, before, user=user, via=via))
        for index, item in enumerate(flows or ()):
            _import_flow(target, item, f"flows[{index}]", user=user, via=via)
    return target, created, updated


def _import_flow(target: Target, item: object, where: str, user, via: str) -> Flow:
    """One flow of a catalog file, created or updated by name (``save_flow``)."""
    if not isinstance(item, Mapping):
        raise ValidationError({where: ["Must be an object with name, weight, steps..."]})
    unknown = sorted(str(key) for key in item if key not in FLOW_FILE_FIELDS)
    if unknown:
        fields_text = ", ".join(FLOW_FILE_FIELDS)
        raise ValidationError(
            {f"{where}.{unknown[0][:40]}": [f"Unknown field; the fields are {fields_text}."]}
        )
    name = item.get("name")
    flow = Flow.objects.filter(target=target, name=name).first() if isinstance(name, str) else None
    flow = flow or Flow(target=target)
    for field in ("name", "weight", "description"):
        if field in item:
            setattr(flow, field, item[field])
    try:
        steps = steps_from_data(target, item.get("steps"))
        return save_flow(flow, steps, user=user, via=via)
    except ValidationError as exc:
        raise ValidationError(
            {f"{where}.{key}": messages for key, messages in exc.message_dict.items()}
        ) from exc
