"""A validator for the subset of JSON Schema (draft 2020-12) that
docs/schema/*.schema.json use: type, const, enum, properties, required,
additionalProperties, items, minimum. Stdlib only (no jsonschema here)."""
import json
import os

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "schema")
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_cache = {}


def _is_type(value, name):
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def errors(value, schema, path="$"):
    """Every way value breaks schema, as readable strings (empty: valid)."""
    out = []
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not one of {schema['enum']}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return out + [f"{path}: {value!r} is not {'/'.join(names)}"]
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        out.append(f"{path}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: missing {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += errors(item, props[key], f"{path}.{key}")
            elif extra is False:
                out.append(f"{path}: unexpected {key!r}")
            elif isinstance(extra, dict):
                out += errors(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(item, schema["items"], f"{path}[{i}]")
    return out


def schema_for(record_type):
    if record_type not in _cache:
        with open(os.path.join(SCHEMA_DIR, f"{record_type}.schema.json")) as f:
            _cache[record_type] = json.load(f)
    return _cache[record_type]


def check_record(record):
    """Raises AssertionError when a record of synfin's breaks its schema."""
    assert isinstance(record, dict) and isinstance(record.get("type"), str), record
    problems = errors(record, schema_for(record["type"]))
    assert not problems, f"record breaks docs/schema/{record['type']}.schema.json: {problems}: {record}"
