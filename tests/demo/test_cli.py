"""``honest-metering demo --new-uscc``: a valid credit code that no merchant holds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from backend import cli
from backend.demo.data import random_uscc
from backend.demo.seed import unused_uscc
from backend.merchants.models import Merchant
from backend.uscc import is_valid_uscc
from tests import factories


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("HM_ENV", "development")
    monkeypatch.setenv("HM_DATA_DIR", str(data))
    monkeypatch.delenv("HM_DATABASE_URL", raising=False)
    return data


def test_unused_uscc_skips_a_code_already_registered(client: Any) -> None:
    first = random_uscc(random.Random(7))
    factories.register(client, uscc=first)
    with client.app.state.ctx.db.read() as s:
        code = unused_uscc(s, rng=random.Random(7))
    assert code != first and is_valid_uscc(code)


def test_codes_are_valid_and_vary() -> None:
    codes = {unused_uscc(None) for _ in range(50)}
    assert len(codes) == 50 and all(is_valid_uscc(c) for c in codes)


def test_new_uscc_prints_an_unregistered_valid_code(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["demo", "--new-uscc"], capsys)  # no tables yet
    assert code == 0 and is_valid_uscc(out.strip())


def test_new_uscc_checks_the_registry(
    client: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the test app's migrated registry, with a merchant in it."""
    settings = client.app.state.settings
    m = factories.register(client)
    monkeypatch.setenv("HM_ENV", "development")
    monkeypatch.setenv("HM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HM_DATABASE_URL", settings.db_url)
    code, out, _ = _run(["demo", "--new-uscc"], capsys)
    printed = out.strip()
    assert code == 0 and is_valid_uscc(printed) and printed != m["uscc"]
    with client.app.state.ctx.db.read() as s:
        assert s.get(Merchant, printed) is None
    # The printed code registers.
    assert factories.register(client, uscc=printed)["uscc"] == printed


def test_refused_in_production(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HM_ENV", "production")
    monkeypatch.setenv("HM_SECRET_KEY", "x" * 40)
    # Refused before any connection is made: the database need not exist.
    monkeypatch.setenv("HM_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    code, out, err = _run(["demo", "--new-uscc"], capsys)
    assert code == 2 and out == "" and "HM_ENV=production" in err
