import json

from unitdata import REPO

from installer.schema import answers_schema


def test_published_schema_is_generated_from_the_models():
    published = json.loads((REPO / "docs/answers.schema.json").read_text())
    assert published == answers_schema(), "regenerate: python3 -m installer.schema > docs/answers.schema.json"


def test_schema_knows_every_documented_key():
    homelab = next(v for v in answers_schema()["oneOf"] if v["properties"]["role"]["const"] == "homelab")
    section = homelab["properties"]["homelab"]["properties"]
    assert {"endpoint", "keepalive", "docker_subnets", "watchdog"} <= set(section)
    assert {"check_host", "action"} <= set(section["watchdog"]["properties"])
    assert section["docker_subnets"] == {"type": "array", "items": {"type": "string"}}
