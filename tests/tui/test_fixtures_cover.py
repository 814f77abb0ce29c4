"""The replay fixtures cover every event type the engine emits, and every line of them validates
against the one schema (engine/jobs/schema.py)."""

import json
import re
from pathlib import Path

from engine.jobs import schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def emitted_types(package: str) -> set[str]:
    """Event types the engine's code writes: `.emit("type"`, `.event("type"`, `_dispatch("type"`."""
    found = set()
    for p in (ROOT / "engine" / package).rglob("*.py"):
        found |= set(re.findall(r"(?:\.emit|\.event|_dispatch)\(\s*\"([a-z_]+)\"", p.read_text(encoding="utf-8")))
    return found


def fixture_events() -> dict[str, list[dict]]:
    return {d.name: [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines() if x.strip()]
            for d in sorted(FIXTURES.iterdir()) if (d / "events.jsonl").is_file()}


def test_every_type_the_engine_emits_is_in_the_schema():
    # engine/listen writes both its own job's stream and the listening events of a training run
    for job, package in (("train", "train"), ("prep", "prep"), (None, "listen")):
        missing = emitted_types(package) - set(schema.event_types(job))
        assert not missing, f"{job}: emitted but not in engine/jobs/schema.py: {sorted(missing)}"


def test_the_fixtures_cover_every_training_event_type_and_validate():
    fixtures = fixture_events()
    seen = {e["type"] for evs in fixtures.values() for e in evs}
    # training logs through prep's Reporter; the listening test's types are covered by tests/train/test_listen_run.py
    emitted = (emitted_types("train") | {"log"}) - {"listen", "listen_progress", "best_listen"}
    assert emitted - seen == set(), f"no fixture has {sorted(emitted - seen)}: record a run that does"
    bad = [(name, e["type"], p) for name, evs in fixtures.items() for e in evs for p in schema.validate(e, "train")]
    assert bad == []
    # a fixture recorded by the current engine: version 2, warnings with codes, states with their job
    assert any(evs and evs[0]["v"] == schema.SCHEMA_VERSION for evs in fixtures.values())
