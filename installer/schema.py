"""The answers format as JSON Schema, for editors (`python3 -m installer.schema`).

Generated from the answers models, so it cannot drift from what `--check` accepts for
keys and types; the meaning (ranges, addresses) is judged by `cgnat-setup --check` alone.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing

from installer import roles


def _type_schema(tp) -> dict:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is list:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0])}
    if dataclasses.is_dataclass(tp):
        return _object_schema(tp)
    return {"type": {int: "integer", str: "string"}[tp]}


def _object_schema(model) -> dict:
    hints = typing.get_type_hints(model)
    return {"type": "object", "additionalProperties": False,
            "properties": {f.name: _type_schema(hints[f.name]) for f in dataclasses.fields(model)}}


def answers_schema() -> dict:
    variants = []
    for role in roles.available():      # both, in the source tree where it is generated
        variant = _object_schema(roles.get(role).model)
        variant["properties"]["role"] = {"const": role}
        variants.append(variant)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "cgnat-setup answers file (TOML)", "oneOf": variants}


if __name__ == "__main__":
    print(json.dumps(answers_schema(), indent=2))
