"""The record schemas (docs/schema) and the validator (jsonschema) every integration test uses."""
import json
import os

import jsonschema

from lib import SCHEMA_DIR, check_record, parse_records, record_errors

RECORD_TYPES = {"state", "conn", "lost", "stuck", "time_wait_end", "rst", "drop", "packet",
                "summary"}
# A change of meaning bumps a record type's version (README).
VERSIONS = {"conn": 2}


def test_a_schema_for_every_record_type_each_versioned():
    found = {name.split(".")[0] for name in os.listdir(SCHEMA_DIR) if name.endswith(".schema.json")}
    assert found == RECORD_TYPES, found
    for name in found:
        with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json")) as f:
            schema = json.load(f)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        jsonschema.Draft202012Validator.check_schema(schema)  # a valid schema of that draft
        assert schema["properties"]["v"] == {"const": VERSIONS.get(name, 1)}, name
        assert f"version {VERSIONS.get(name, 1)}" in schema["title"], name
        assert {"type", "v", "ts_ns"} <= set(schema["required"])


def test_validator_rejects_what_breaks_a_schema():
    good = {"type": "lost", "v": 1, "ts_ns": 5, "count": 1, "total": 3, "kernel_skipped": 0,
            "kernel_unseen": 0}
    check_record(good)
    assert not record_errors(good)
    assert record_errors({**good, "count": -1})
    assert record_errors({**good, "count": "1"})
    assert record_errors({k: v for k, v in good.items() if k != "total"})
    assert record_errors({**good, "extra": 1})
    assert record_errors({**good, "v": 2})
    assert record_errors({**good, "count": True})  # a bool is not an integer
    assert record_errors({**good, "type": "no_such_type"})
    assert record_errors(["not", "a", "record"])
    try:
        parse_records(json.dumps({**good, "count": -1}) + "\n")
    except AssertionError as err:
        assert "lost.schema.json" in str(err), err
    else:
        raise AssertionError("parse_records() let an invalid record through")
