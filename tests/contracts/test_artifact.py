"""The committed contract artifact matches the Solidity source and the pinned compiler."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from backend.ledger.contract import ABI, ARTIFACT_PATH, BYTECODE, load_artifact
from tests.conftest import ROOT as REPO
from tests.conftest import require

SCRIPT = REPO / "scripts" / "compile_contracts.py"
SOURCE = REPO / "contracts" / "MeteringLedger.sol"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_contracts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


def test_artifact_is_up_to_date_with_the_source(script: ModuleType) -> None:
    if script._native_solc() is None and (
        shutil.which("node") is None or not (script.NODE_SOLC / "package.json").is_file()
    ):
        require(
            False,
            f"no solc {script.SOLC_VERSION}: neither a native binary nor node + "
            "node_modules/solc (run `npm install`)"
        )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_artifact_records_the_source_hash_and_pinned_compiler(script: ModuleType) -> None:
    # Needs no compiler: catches a source edited without recompiling even where solc is absent.
    artifact = load_artifact()
    assert artifact["sourceSha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest(), (
        "contracts/MeteringLedger.sol changed: run `python scripts/compile_contracts.py`"
    )
    assert artifact["compiler"].startswith(f"{script.SOLC_VERSION}+commit.")
    assert artifact["settings"] == script.SETTINGS
    assert artifact["contractName"] == "MeteringLedger"
    assert f"pragma solidity {script.SOLC_VERSION};" in SOURCE.read_text("utf-8")


def test_artifact_is_canonical_json(script: ModuleType) -> None:
    text = Path(ARTIFACT_PATH).read_text("utf-8")
    assert text == script.render(load_artifact())


def test_module_exposes_artifact() -> None:
    assert load_artifact()["abi"] == ABI
    assert load_artifact()["bytecode"] == BYTECODE
    assert BYTECODE.startswith("0x") and len(BYTECODE) > 2
    functions = {item["name"] for item in ABI if item["type"] == "function"}
    assert {"anchor", "verifyInclusion", "commitDraw", "revealDraw"} <= functions
    errors = {item["name"] for item in ABI if item["type"] == "error"}
    assert errors and all(name.startswith("MeteringLedger") for name in errors)


@pytest.mark.parametrize(
    "version",
    ["0.8.27+commit.40a35a09.Linux.g++", "0.8.29+commit.ab55807c.Emscripten.clang", "0.8.2"],
)
def test_other_compiler_versions_are_refused(script: ModuleType, version: str) -> None:
    with pytest.raises(script.CompileError, match="pinned to solc 0.8.28"):
        script._check_version(version, "test compiler")
