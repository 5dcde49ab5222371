"""A session's configuration as a file (YAML or JSON) for headless runs: read, checked field by
field with the API's own rules and messages, and written back out (``export-config``).

The file holds the session configuration's field names, as the API does, and ``target``: a target's
base URL or its name. Every error names the field and, where the file says where it is, the
line, so that a CI log points at the mistake.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError

from apps.sessions.api.serializers.sessions import LoadTestSessionSerializer
from apps.sessions.models import LoadTestSession, Target
from apps.sessions.validation import JSON_DEPTH_MAX, check_target_url, json_depth, loads_json

CONFIG_BYTES_MAX = 2**20
FILE_FIELDS = ("target", *[name for name in LoadTestSession.CONFIG_FIELDS if name != "target"])


class ConfigError(Exception):
    """The file (or an option) is not a usable configuration; the message says where."""


@dataclass
class ConfigFile:
    """A parsed configuration: its values by field, and each field's line (when known)."""

    path: Path
    values: dict
    lines: dict[str, int]
    item_lines: dict[str, list[int]]

    def where(self, field: str, index: int | None = None) -> str:
        line = None
        if index is not None and index < len(self.item_lines.get(field, [])):
            line = self.item_lines[field][index]
        line = line or self.lines.get(field)
        return f"{self.path}:{line}" if line else str(self.path)


def _yaml_lines(text: str) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Lines of the top-level keys (and of list items), from PyYAML's node marks; duplicate
    keys, which PyYAML would silently resolve to the last one, and aliases are refused."""
    # PyYAML's scanner slows down with every open bracket (a megabyte of "[" takes minutes):
    # the API's nesting limit, counted on the text first.
    if json_depth(text) > JSON_DEPTH_MAX:
        raise ConfigError(f"1: nested deeper than {JSON_DEPTH_MAX} levels.")
    # Aliases (*name) could make a small file a huge document (a "billion laughs"); a
    # configuration has no need of them.
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(
                f"{event.start_mark.line + 1}: YAML aliases (*name) are not accepted."
            )
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[str, int] = {}
    item_lines: dict[str, list[int]] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines, item_lines
    for key, value in node.value:
        name = str(key.value)
        if name in lines:
            raise ConfigError(
                f"{key.start_mark.line + 1}: '{name}' is given twice (first on line {lines[name]})."
            )
        lines[name] = key.start_mark.line + 1
        if isinstance(value, yaml.SequenceNode):
            item_lines[name] = [item.start_mark.line + 1 for item in value.value]
    return lines, item_lines


def _json_lines(text: str) -> dict[str, int]:
    """Lines of the top-level keys of a JSON object: the first line naming each key."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        for match in re.finditer(r'"([A-Za-z_]+)"\s*:', line):
            lines.setdefault(match.group(1), number)
    return lines


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"'{key}' is given twice")
        seen[key] = value
    return seen


def read_document(path: str | Path) -> tuple[object, tuple[dict[str, int], dict]]:
    """Parse ``path`` (YAML for .yaml/.yml, else JSON): the document, and the lines of its
    top-level keys and of their list items (when known)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}).") from exc
    if len(raw) > CONFIG_BYTES_MAX:
        raise ConfigError(f"{path}: larger than {CONFIG_BYTES_MAX // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}).") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            lines, item_lines = _yaml_lines(text)
            values = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc.context}.") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}.") from exc
        except ConfigError as exc:
            raise ConfigError(f"{path}:{exc}") from exc
        except RecursionError as exc:
            raise ConfigError(f"{path}: nested too deeply.") from exc
    else:
        try:
            loads_json(text)  # the API's limits first: depth, NaN, surrogates
            values = json.loads(text, object_pairs_hook=_refuse_duplicates)
        except json.JSONDecodeError as exc:
            where = f"{path}:{exc.lineno}:{exc.colno}"
            raise ConfigError(f"{where}: not valid JSON: {exc.msg}.") from exc
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}.") from exc
        lines, item_lines = _json_lines(text), {}
    return values, (lines, item_lines)


def read_config(path: str | Path) -> ConfigFile:
    """Parse a session's config file without judging its values yet (but refusing fields
    that are not configuration)."""
    path = Path(path)
    values, (lines, item_lines) = read_document(path)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: must be a mapping of fields (session_name, concurrent_users, "
            "thresholds...), not a list or a single value."
        )
    config = ConfigFile(path=path, values=values, lines=lines, item_lines=item_lines)
    unknown = [str(name) for name in values if name not in FILE_FIELDS]
    if unknown:
        raise ConfigError(
            f"{config.where(unknown[0])}: unknown field '{unknown[0][:60]}'; the fields are "
            f"{', '.join(FILE_FIELDS)}."
        )
    return config


def find_target(reference: object, field: str = "target") -> Target:
    """A target by base URL (the oldest with it) or by name; ``ValidationError`` otherwise."""
    if not isinstance(reference, str) or not reference.strip():
        raise ValidationError({field: ["Must be a target's base URL or its name."]})
    reference = reference.strip()
    if "://" in reference:
        check_target_url(reference)  # an off-list host is refused before anything else
        target = (
            Target.objects.filter(base_url__in=[reference, reference.rstrip("/")])
            .order_by("pk")
            .first()
        )
    else:
        target = Target.objects.filter(name=reference).first()
    if target is None:
        raise ValidationError(
            {
                field: [
                    f"No target '{reference[:200]}'. Add it with its endpoints "
                    "(manage.py loadtest import-endpoints FILE, the admin or the API)."
                ]
            }
        )
    return target


def _first_message(errors) -> tuple[int | None, str]:
    """A DRF error (list or dict) as one sentence, with the list index it points to."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        index, message = _first_message(value)
        return index, f"{key}: {message}"
    message = str(errors[0]) if errors else "invalid"
    found = re.match(r"Threshold (\d+):", message)
    return (int(found.group(1)) - 1 if found else None), message


def _scoped_text(item: object) -> object:
    if isinstance(item, dict) and len(item) == 1:
        ((key, value),) = item.items()
        if isinstance(key, str) and isinstance(value, str):
            return f"{key}: {value}"
    return item


def build_session(config: ConfigFile, target_override: str | None, thresholds: list[str]):
    """An unsaved ``LoadTestSession`` from the file, with ``--target`` and ``--threshold``
    applied; a ``ConfigError`` naming the field (and line) for the first problem."""
    values = dict(config.values)
    if isinstance(values.get("thresholds"), list):
        # In YAML, an unquoted "- checkout: p95_ms < 500" is a one-key mapping: read it as
        # the endpoint-scoped threshold it was meant to be.
        values["thresholds"] = [_scoped_text(item) for item in values["thresholds"]]
    if target_override is not None:
        values["target"] = target_override
    if thresholds:
        stored = values.get("thresholds") or []
        if not isinstance(stored, list):
            raise ConfigError(f"{config.where('thresholds')}: thresholds: must be a list.")
        values["thresholds"] = [*stored, *thresholds]
    where_target = "--target" if target_override is not None else config.where("target")
    if "target" in values:
        try:
            values["target"] = find_target(values["target"]).pk
        except ValidationError as exc:
            messages = exc.message_dict["target"] if hasattr(exc, "error_dict") else exc.messages
            message = messages[0]
            raise ConfigError(f"{where_target}: target: {message}") from exc
    serializer = LoadTestSessionSerializer(data=values)
    if not serializer.is_valid():
        problems = []
        for field, errors in serializer.errors.items():
            index, message = _first_message(errors)
            where = where_target if field == "target" else config.where(field, index)
            from_option = index is not None and index >= len(config.values.get(field) or [])
            if field == "thresholds" and from_option:
                where = "--threshold"
            if field == "non_field_errors":
                problems.append(f"{config.path}: {message}")
            else:
                problems.append(f"{where}: {field}: {message}")
        raise ConfigError("\n".join(problems))
    return LoadTestSession(**serializer.validated_data)


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


def export_config(session: LoadTestSession, as_yaml: bool) -> str:
    """The session's configuration as a file ``loadtest run --config`` reads back."""
    target = session.target
    shared_url = Target.objects.filter(base_url=target.base_url).order_by("pk").first() != target
    values = {"target": target.name if shared_url else target.base_url}
    for name in LoadTestSession.CONFIG_FIELDS:
        if name != "target":
            values[name] = _plain(getattr(session, name))
    if as_yaml:
        header = f"# Session {session.pk} ({session.session_name}), for manage.py loadtest run\n"
        return header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
    return json.dumps(values, indent=2, ensure_ascii=False) + "\n"
