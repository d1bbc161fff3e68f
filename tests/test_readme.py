"""The README tells the truth about settings and starting the service (issue 16)."""

from __future__ import annotations

import re

from backend.cli import build_parser
from backend.config import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _settings_table() -> set[str]:
    rows = [line for line in README.splitlines() if line.startswith("| `HM_")]
    return {name for row in rows for name in re.findall(r"`(HM_[A-Z0-9_]+)`", row.split("|")[1])}


def test_every_setting_is_in_the_table() -> None:
    documented = _settings_table()
    names = [f"HM_{n.upper()}" for n in Settings.model_fields]
    missing = sorted(n for n in names if n not in documented)
    assert not missing, f"README settings table lacks {missing}"
    unknown = sorted(n for n in documented if n[3:].lower() not in Settings.model_fields)
    assert not unknown, f"README settings table names settings that do not exist: {unknown}"


def test_no_links_outside_the_repository() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    assert not re.findall(r"\]\((?!docs/|[\w./-]+\.\w+\))[^)]*\)", prose)
    assert not re.findall(r"<https?://|\]\(https?://", prose)


def test_run_sh_takes_a_port() -> None:
    run_sh = (ROOT / "scripts" / "run.sh").read_text(encoding="utf-8")
    assert re.search(r'honest-metering serve "\$@"', run_sh)
    args = build_parser().parse_args(["serve", "--port", "8123", "--host", "0.0.0.0"])
    assert (args.port, args.host) == (8123, "0.0.0.0")
    assert "scripts/run.sh --port" in README


def test_new_uscc_is_documented() -> None:
    assert "demo --new-uscc" in README
    args = build_parser().parse_args(["demo", "--new-uscc"])
    assert args.new_uscc is True
