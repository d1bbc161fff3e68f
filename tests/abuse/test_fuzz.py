"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis).

The app runs in-process (ASGI) on the embedded defaults — SQLite and the embedded chain
in a temp dir, the anchoring worker off — populated like tests/abuse/world.py, and path
parameters are drawn from the generator, from that world's real ids (so requests reach
objects that exist) and a short text with a NUL in it; a query or body is also tried
with a NUL after each of its text fields (PostgreSQL text cannot hold one). Every
generated request, valid or not (positive and negative modes; the examples, coverage and
fuzzing phases), as anonymous, a merchant, a regulator and an admin, must get a response
that

- is not a 5xx (``not_a_server_error``; for SVG, PDF and HTML too),
- has a status code the schema declares for the operation (``status_code_conformance``),
- matches the schema declared for that status (``response_schema_conformance``), errors
  included: they are all ``ErrorResponse`` (backend/errors.py).

test_fuzz_postgres.py runs the same as anonymous and as a regulator on PostgreSQL.

Bounded and reproducible: ``MAX_EXAMPLES`` per operation and phase, derandomized with a
fixed seed, no example database. Measured on the shared 2-core machine under a load of
5-6: SQLite's four identities 8.5 min (5 min of CPU), PostgreSQL's two 4.5 min (2.7 min
of CPU).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.abuse.fuzzing import run_case, schema
from tests.abuse.world import World


@pytest.mark.slow
@schema.parametrize()
def test_anonymous(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "anonymous")


@pytest.mark.slow
@schema.parametrize()
def test_merchant(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "merchant")


@pytest.mark.slow
@schema.parametrize()
def test_regulator(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "regulator")


@pytest.mark.slow
@schema.parametrize()
def test_admin(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "admin")
