"""Strict validation of custom resources against the upstream CRD schemas in `schemas/`.

"Strict" is what `kubeconform -strict` means: an object schema that lists `properties` but says
nothing about `additionalProperties` is closed (`additionalProperties: false`), so a misspelt
field is an error instead of being silently dropped by the API server or the controller. Objects
marked `x-kubernetes-preserve-unknown-fields` stay open, as the API server keeps them.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_VERSION = "1.30"


def _each_object(schema: Any, fn: Callable[[dict[str, Any]], None]) -> None:
    """Call ``fn`` on every (sub)schema, following only schema keywords (a field may well be
    called "properties" or "pattern")."""
    if not isinstance(schema, dict):
        return
    fn(schema)
    for sub in (schema.get("properties") or {}).values():
        _each_object(sub, fn)
    for key in ("items", "additionalProperties", "not"):
        _each_object(schema.get(key), fn)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _each_object(sub, fn)


def _python_pattern(node: dict[str, Any]) -> None:
    """Go's RE2 accepts a flag group anywhere (`^(?i)(abort|warn)?$`); Python only at the start.
    Moving it there means the same for the patterns in these schemas."""
    pattern = node.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern[1:]:
        node["pattern"] = "(?i)" + pattern.replace("(?i)", "")


def _closed(node: dict[str, Any]) -> None:
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False


def prepare(schema: Any, strict: bool = True) -> Any:
    """A copy of ``schema`` for Python's jsonschema; strict: every open object that declares
    properties closed."""
    schema = copy.deepcopy(schema)
    _each_object(schema, _python_pattern)
    if strict:
        _each_object(schema, _closed)
    return schema


def schema_path(obj: dict[str, Any]) -> Path:
    group, _, version = obj["apiVersion"].rpartition("/")
    return SCHEMAS / group / f"{obj['kind'].lower()}_{version}.json"


def has_schema(obj: dict[str, Any]) -> bool:
    return "/" in obj["apiVersion"] and schema_path(obj).is_file()


@functools.cache
def _validator(path: Path, strict: bool) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    schema = prepare(schema, strict)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def errors(obj: dict[str, Any], strict: bool = True) -> list[str]:
    """Every schema violation of a custom resource (its metadata checked as an ObjectMeta)."""
    import kubernetes_validate

    path = schema_path(obj)
    assert path.is_file(), f"no schema for {obj['apiVersion']} {obj['kind']} in {SCHEMAS}"
    found = [
        f"{obj['kind']}/{obj.get('metadata', {}).get('name')}: "
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in _validator(path, strict).iter_errors(obj)
    ]
    # The CRD schemas leave metadata open: check it as what the API server parses it into.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    try:
        kubernetes_validate.validate(carrier, K8S_VERSION, strict=strict)
    except kubernetes_validate.ValidationError as exc:
        found.append(f"{obj['kind']}/{obj.get('metadata', {}).get('name')}: metadata: {exc}")
    return found
