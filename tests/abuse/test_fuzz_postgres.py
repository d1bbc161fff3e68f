"""The schemathesis run of test_fuzz.py on PostgreSQL, as anonymous and as a regulator.

The same schema, configuration, checks and populated world (tests/abuse/world.py) as on
SQLite, with the app on a fresh PostgreSQL database: where the two differ (text cannot
hold NUL, stricter types, row locks, constraint errors), a request must still never get
a 5xx. Anonymous callers and regulators reach the most code (the public reads, and every
staff write); merchants and admins are fuzzed on SQLite. 4.5 min here under load (2.7
min of CPU): about what each identity costs on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.abuse.fuzzing import run_case, schema
from tests.abuse.world import World
from tests.conftest import fresh_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def fuzz_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the module (dropped afterwards)."""
    with fresh_postgres("hm_fuzz") as url:
        yield url


@pytest.mark.slow
@schema.parametrize()
def test_anonymous_postgresql(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "anonymous")


@pytest.mark.slow
@schema.parametrize()
def test_regulator_postgresql(case: Any, asgi: Any, world: World) -> None:
    run_case(case, asgi, world, "regulator")
