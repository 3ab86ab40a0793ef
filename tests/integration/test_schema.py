"""The record schemas (docs/schema) and the validator every integration test uses."""
import json
import os

from schema import SCHEMA_DIR, check_record, errors

RECORD_TYPES = {"state", "conn", "lost", "stuck", "time_wait_end", "packet", "summary"}


def test_a_schema_for_every_record_type_each_versioned():
    found = {name.split(".")[0] for name in os.listdir(SCHEMA_DIR) if name.endswith(".schema.json")}
    assert found == RECORD_TYPES, found
    for name in found:
        with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json")) as f:
            schema = json.load(f)
        assert schema["properties"]["v"] == {"const": 1}
        assert {"type", "v", "ts_ns"} <= set(schema["required"])


def test_validator_rejects_what_breaks_a_schema():
    good = {"type": "lost", "v": 1, "ts_ns": 5, "count": 1, "total": 3, "kernel_skipped": 0}
    check_record(good)
    assert errors({**good, "count": -1}, _schema("lost"))
    assert errors({**good, "count": "1"}, _schema("lost"))
    assert errors({k: v for k, v in good.items() if k != "total"}, _schema("lost"))
    assert errors({**good, "extra": 1}, _schema("lost"))
    assert errors({**good, "v": 2}, _schema("lost"))
    assert errors({**good, "count": True}, _schema("lost"))  # a bool is not an integer


def _schema(name):
    with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json")) as f:
        return json.load(f)
