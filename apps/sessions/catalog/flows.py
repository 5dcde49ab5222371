"""Multi-step flows on the control plane: reading a flow's steps as every surface writes them
(API JSON, the dashboard's steps editor, a catalog file, the admin's inline), and checking a
flow with its steps as one whole before anything is stored.

Every surface ends in ``flow_changes.save_flow``, which calls ``check_flow``: the same rules and
the same messages wherever a flow is edited. Errors are keyed the way the API shows them:
``name``, ``weight``, ``steps`` and ``steps[i].field`` (i from 0, as in the JSON), so that a
caller can point at the step at fault.

The rule only a whole flow can check: a step's endpoint templates (URL, header values, body)
may use a variable only if an earlier step extracts it. A user's variables start empty at
each iteration, so a variable read before it is set would silently send "".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError

from apps.sessions.models import Endpoint, Flow, FlowStep, Target
from apps.workers.templating import TemplateError, parse_template

STEPS_MIN = 1
STEPS_MAX = 50
STEP_FIELDS = ("endpoint", "think_time_s", "extract")


def _refuse(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def steps_from_data(target: Target | None, raw_steps: object) -> list[FlowStep]:
    """Unsaved ``FlowStep`` rows from JSON-like data: a list of ``{endpoint: <id or name>,
    think_time_s, extract}``, the endpoint looked up among ``target``'s. Raises
    ValidationError keyed ``steps`` or ``steps[i].field`` for what cannot even be read;
    the values themselves are judged by ``check_flow``."""
    if not isinstance(raw_steps, list):
        raise ValidationError(
            {
                "steps": [
                    'A list of steps, e.g. [{"endpoint": "login", "think_time_s": 0.5, '
                    '"extract": [{"name": "token", "json_path": "$.token"}]}].'
                ]
            }
        )
    if len(raw_steps) > STEPS_MAX:
        raise ValidationError(
            {"steps": [f"At most {STEPS_MAX} steps in a flow ({len(raw_steps):,} given)."]}
        )
    errors: dict[str, list[str]] = {}
    steps: list[FlowStep] = []
    for index, item in enumerate(raw_steps):
        where = f"steps[{index}]"
        if not isinstance(item, Mapping):
            _refuse(errors, where, "An object with endpoint, think_time_s and extract.")
            continue
        unknown = sorted(str(key) for key in item if key not in STEP_FIELDS)
        if unknown:
            _refuse(
                errors,
                f"{where}.{unknown[0][:40]}",
                f"Unknown field; a step has {', '.join(STEP_FIELDS)}.",
            )
            continue
        step = FlowStep(position=index + 1)
        endpoint = _find_endpoint(target, item.get("endpoint"), errors, f"{where}.endpoint")
        if endpoint is not None:
            step.endpoint = endpoint
        think_time_s = item.get("think_time_s", 0.0)
        if isinstance(think_time_s, bool) or not isinstance(think_time_s, int | float):
            _refuse(errors, f"{where}.think_time_s", "A number of seconds (0 for none).")
        else:
            step.think_time_s = float(think_time_s)
        step.extract = item.get("extract") if item.get("extract") is not None else []
        steps.append(step)
    if errors:
        raise ValidationError(errors)
    return steps


def _find_endpoint(
    target: Target | None, reference: object, errors: dict[str, list[str]], key: str
) -> Endpoint | None:
    if target is None:
        _refuse(errors, key, "Choose the flow's target first.")
        return None
    endpoints = Endpoint.objects.filter(target=target)
    if isinstance(reference, int) and not isinstance(reference, bool):
        # Beyond a 64-bit key no row has it (and PostgreSQL would refuse the query).
        found = endpoints.filter(pk=reference).first() if 0 < reference < 2**63 else None
    elif isinstance(reference, str) and reference.strip():
        found = endpoints.filter(name=reference.strip()).first()
    else:
        _refuse(errors, key, "The id or the name of one of the target's endpoints.")
        return None
    if found is None:
        names = ", ".join(endpoints.order_by("name").values_list("name", flat=True)[:20])
        _refuse(
            errors,
            key,
            f"The target '{target.name}' has no endpoint {str(reference)[:100]!r} "
            f"(it has: {names or 'none'}).",
        )
    return found


def steps_as_data(steps: Iterable[FlowStep]) -> list[dict[str, Any]]:
    """Steps as the API, the history and catalog files show them (endpoint by id and name)."""
    return [
        {
            "position": step.position,
            "endpoint": step.endpoint_id,
            "endpoint_name": step.endpoint.name,
            "think_time_s": step.think_time_s,
            "extract": list(step.extract or []),
        }
        for step in steps
    ]


def check_flow(flow: Flow, steps: Sequence[FlowStep]) -> None:
    """The whole flow's rules, before anything is stored: the flow's own fields (name,
    weight, description; not an endpoint's name), 1 to STEPS_MAX steps, each step's fields
    (an endpoint of the flow's target, think time, extraction list) and the order of the
    variables. ValidationError keyed ``name``, ``steps``, ``steps[i].field``."""
    errors: dict[str, list[str]] = {}
    try:
        flow.full_clean(validate_constraints=False, validate_unique=False)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    if flow.target_id is not None and flow.name:
        same_name = Flow.objects.filter(target_id=flow.target_id, name=flow.name)
        if same_name.exclude(pk=flow.pk).exists():
            _refuse(errors, "name", f"The target already has a flow named '{flow.name}'.")
    if not STEPS_MIN <= len(steps) <= STEPS_MAX:
        _refuse(
            errors, "steps", f"A flow has {STEPS_MIN} to {STEPS_MAX} steps ({len(steps)} given)."
        )
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        try:
            step.full_clean(exclude=["flow", "position"], validate_constraints=False)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors.setdefault(f"{where}.{key}", []).extend(messages)
        if (
            step.endpoint_id is not None
            and flow.target_id is not None
            and step.endpoint.target_id != flow.target_id
        ):
            _refuse(
                errors,
                f"{where}.endpoint",
                f"Endpoint '{step.endpoint.name}' belongs to another target; a flow calls "
                "its own target's endpoints.",
            )
    if not errors:
        for key, message in variable_order_problems(flow.name, steps):
            _refuse(errors, key, message)
    if errors:
        raise ValidationError(errors)


def endpoint_variables(endpoint: Endpoint) -> set[str]:
    """The variables an endpoint's templates read (URL, header values, body); a template
    that does not parse reads none here (the endpoint's own validation says why)."""
    texts = [endpoint.url, endpoint.body or ""]
    if isinstance(endpoint.headers, Mapping):
        texts.extend(str(value) for value in endpoint.headers.values())
    variables: set[str] = set()
    for text in texts:
        if "{{" not in text:
            continue
        try:
            variables |= parse_template(text).variables
        except TemplateError:
            continue
    return variables


def extracted_names(step: FlowStep) -> list[str]:
    """The variable names a step's ``extract`` list sets (as written; checked elsewhere)."""
    return [
        item["name"]
        for item in (step.extract if isinstance(step.extract, list) else [])
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
    ]


def variable_order_problems(flow_name: str, steps: Sequence[FlowStep]) -> list[tuple[str, str]]:
    """(key, message) for each step whose endpoint reads a variable no earlier step sets."""
    problems: list[tuple[str, str]] = []
    known: set[str] = set()
    for index, step in enumerate(steps):
        missing = sorted(endpoint_variables(step.endpoint) - known)
        if missing:
            names = ", ".join(missing)
            problems.append(
                (
                    f"steps[{index}].endpoint",
                    f"Flow '{flow_name}', step {index + 1} ({step.endpoint.name}): its "
                    f"templates use {names}, which no earlier step extracts. Extract it in an "
                    "earlier step, or move this step after the one that does.",
                )
            )
        known.update(extracted_names(step))
    return problems
