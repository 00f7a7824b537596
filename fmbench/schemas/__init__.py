"""The JSON Schemas fmbench publishes (result records, spec files) and one way to report a violation.

Example:
    >>> problem({"type": "object", "additionalProperties": False, "properties": {"a": {"type": "integer"}}},
    ...         {"a": 1, "b": 2})
    "unknown key 'b' (known: a)"
    >>> spec = load("spec")
    >>> problem(spec["$defs"]["study"], {"arxiv": "2311.12997", "title": "t"}, root=spec)
    "missing required key 'code'"
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

HERE = Path(__file__).parent


@cache
def load(name: str) -> dict[str, Any]:
    """The schema ``<name>.schema.json`` shipped beside this module."""
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))


def problem(schema: dict[str, Any], instance: Any, root: dict[str, Any] | None = None) -> str | None:
    """The most relevant violation of ``schema`` by ``instance`` as one line, or ``None`` if it is valid.

    ``root`` is the document that ``schema``'s ``$ref`` pointers resolve against (default: ``schema``).
    The line names the key where the problem is (``params.alpha``) and what is wrong with it;
    an unknown key is named first (a misspelt key also leaves a required one missing).
    """
    if root is not None:
        schema = {**schema, "$defs": root["$defs"]}
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = list(validator.iter_errors(instance))
    unknown = [e for e in errors if e.validator == "additionalProperties"]
    error = unknown[0] if unknown else jsonschema.exceptions.best_match(errors)  # a typo: name it, not what it hides
    if error is None:
        return None
    at = ".".join(str(p) for p in error.absolute_path)
    where = f"key {at!r}: " if at else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in known)
        prefix = f"{at}." if at else ""
        return f"unknown key {prefix + unknown[0]!r}" + (f" (known: {', '.join(sorted(known))})" if known else "")
    if error.validator == "anyOf" and error.context and all(e.validator == "required" for e in error.context):
        options = [e.message.split("'")[1] for e in error.context]
        return where + "needs one of the keys " + " or ".join(repr(o) for o in options)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        prefix = f"{at}." if at else ""
        return f"missing required key {prefix + missing!r}"
    return where + error.message
