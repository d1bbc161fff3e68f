"""The schemathesis set-up that test_fuzz.py (SQLite) and test_fuzz_postgres.py share: the
schema, its configuration and hooks, the checks, and the real ids (``KNOWN``) that the
``world`` fixture (tests/abuse/conftest.py) fills in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from backend.app import create_app
from tests.abuse.world import World
from tests.conftest import make_settings

MAX_EXAMPLES = 25
SEED = 20251126
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # valid and invalid requests
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
    }
)

# The schema is the app's own. This instance only describes the API and never starts; the
# requests go to the populated app of the ``fuzz_app`` fixture.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings(Path("/nonexistent/openapi-only"))).openapi(), config=CONFIG
)


@schemathesis.serializer("application/x-ndjson")
def ndjson(context: Any, value: Any) -> bytes:
    """Bodies of the bulk import's JSON-lines variant: a generated string as it is."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8", "replace")


# Real path parameter values (uscc, pledge_id, draw, item_id, ...), set by ``world``.
KNOWN: dict[str, Any] = {}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return st.just(path_parameters)
    real = {name: KNOWN.get(name, value) for name, value in path_parameters.items()}
    # A short id with a NUL in it passes the length checks that stop a longer one, and
    # reaches the lookup that PostgreSQL cannot take (issue 15: /api/pledges/x%00y).
    hostile = dict.fromkeys(real, "x\x00y")
    return st.sampled_from([path_parameters, real, hostile])


def _with_a_nul(values: Any) -> Any:
    """The generated values, and the same with a NUL after each string among them."""
    if not isinstance(values, dict) or not any(isinstance(v, str) for v in values.values()):
        return st.just(values)
    hostile = {k: v + "\x00" if isinstance(v, str) else v for k, v in values.items()}
    return st.sampled_from([values, hostile])


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
    return _with_a_nul(query)


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    # Form fields (the login form's user name) and JSON strings alike.
    return _with_a_nul(body)


def run_case(case: Any, asgi: Any, world: World, identity: str) -> None:
    case.call_and_validate(session=asgi, headers=world.bearer(identity), checks=CHECKS)
