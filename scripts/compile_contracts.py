"""Compile the Solidity contracts into the committed artifacts under contracts/build/.

Run it after changing a contract and commit the JSON it writes; tests and the service load
that artifact and never compile anything. ``--check`` recompiles in memory and fails if the
committed artifact is stale, so CI catches a contract edited without recompiling.

Compiler: solc exactly ``SOLC_VERSION``. A native binary is used through py-solc-x when one
of that version is installed for solcx or on PATH; otherwise the npm package ``solc`` of the
same version in ``node_modules`` is driven through its JavaScript API with ``node`` (the
``solcjs`` command prints a stray line before its JSON, so it is not used). Any other
version is refused: the artifact must be reproducible byte for byte.

Usage::

    python scripts/compile_contracts.py          # write contracts/build/*.json
    python scripts/compile_contracts.py --check  # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = REPO / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
NODE_SOLC = REPO / "node_modules" / "solc"

SOLC_VERSION = "0.8.28"
CONTRACTS = ("MeteringLedger",)

# Everything that influences the bytecode, recorded in the artifact. The source is named by
# its repository-relative path so the metadata hash does not depend on the checkout location.
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "ipfs"},
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": False,
}

# The parts of the artifact that must match exactly in --check mode.
CHECKED_FIELDS = ("abi", "bytecode", "deployedBytecode", "settings", "sourceSha256", "sourceName")

_NODE_COMPILE_JS = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({version: solc.version(), output: output}));
});
"""


class CompileError(RuntimeError):
    """The contracts could not be compiled reproducibly; the message says why and what to do."""


@dataclass(frozen=True)
class Compiled:
    version: str  # long form, e.g. 0.8.28+commit.7893614a.Emscripten.clang
    output: dict[str, Any]


def _short_version(long_version: str) -> str:
    """``0.8.28+commit.7893614a.Linux.g++`` -> ``0.8.28+commit.7893614a`` (platform dropped)."""
    match = re.match(r"(\d+\.\d+\.\d+)(\+commit\.[0-9a-f]+)?", long_version)
    if not match:
        raise CompileError(f"cannot parse a solc version from {long_version!r}")
    return match.group(0)


def _check_version(long_version: str, where: str) -> None:
    plain = _short_version(long_version).split("+")[0]
    if plain != SOLC_VERSION:
        raise CompileError(
            f"{where} is solc {long_version}, but the contracts are pinned to solc "
            f"{SOLC_VERSION}; install that exact version (npm install solc@{SOLC_VERSION})"
        )


def _native_solc() -> Path | None:
    """A native solc of exactly SOLC_VERSION (installed for solcx or on PATH), or None."""
    try:
        import solcx
    except ImportError:
        return None
    candidates: list[Path] = []
    try:
        if any(str(v) == SOLC_VERSION for v in solcx.get_installed_solc_versions()):
            candidates.append(Path(solcx.install.get_executable(SOLC_VERSION)))
    except Exception:  # noqa: BLE001 - a broken solcx folder just means "not installed"
        pass
    on_path = shutil.which("solc")
    if on_path:
        candidates.append(Path(on_path))
    for binary in candidates:
        try:
            version = solcx.wrapper.get_solc_version(binary)
        except Exception:  # noqa: BLE001 - e.g. an npm solcjs shim named solc
            continue
        if str(version) == SOLC_VERSION:
            return binary
        print(
            f"note: ignoring {binary}: solc {version}, not the pinned {SOLC_VERSION}",
            file=sys.stderr,
        )
    return None


def _native_long_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Version:\s*(\S+)", out)
    if not match:
        raise CompileError(f"{binary} --version printed no version:\n{out}")
    return match.group(1)


def _compile_native(binary: Path, standard_input: dict[str, Any]) -> Compiled:
    import solcx

    version = _native_long_version(binary)
    _check_version(version, str(binary))
    output = solcx.compile_standard(standard_input, solc_binary=binary)
    return Compiled(version=version, output=output)


def _compile_node(standard_input: dict[str, Any]) -> Compiled:
    node = shutil.which("node")
    if node is None or not (NODE_SOLC / "package.json").is_file():
        raise CompileError(
            f"no solc {SOLC_VERSION} available: install a native solc {SOLC_VERSION}, or node "
            f"and the npm package (npm install in {REPO}, which installs solc@{SOLC_VERSION})"
        )
    proc = subprocess.run(
        [node, "-e", _NODE_COMPILE_JS, str(NODE_SOLC)],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise CompileError(f"node solc failed (exit {proc.returncode}):\n{proc.stderr}")
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CompileError(f"node solc printed something that is not JSON: {exc}") from exc
    _check_version(result["version"], f"the npm package in {NODE_SOLC}")
    return Compiled(version=result["version"], output=result["output"])


def standard_json_input() -> dict[str, Any]:
    sources = {
        f"contracts/{name}.sol": {"content": (CONTRACTS_DIR / f"{name}.sol").read_text("utf-8")}
        for name in CONTRACTS
    }
    settings = dict(SETTINGS)
    settings["outputSelection"] = {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
    }
    return {"language": "Solidity", "sources": sources, "settings": settings}


def compile_all() -> Compiled:
    """Compile every contract with the pinned solc; raise CompileError on any error."""
    standard_input = standard_json_input()
    binary = _native_solc()
    compiled = (
        _compile_native(binary, standard_input)
        if binary is not None
        else _compile_node(standard_input)
    )
    problems = compiled.output.get("errors", [])
    errors = [p for p in problems if p.get("severity") == "error"]
    for p in problems:
        if p.get("severity") != "error":
            print(p.get("formattedMessage", p.get("message")), file=sys.stderr)
    if errors:
        raise CompileError(
            "solc reported errors:\n" + "\n".join(e.get("formattedMessage", "") for e in errors)
        )
    return compiled


def artifacts(compiled: Compiled) -> dict[str, dict[str, Any]]:
    """One artifact per contract, keyed by contract name."""
    out: dict[str, dict[str, Any]] = {}
    for name in CONTRACTS:
        source_name = f"contracts/{name}.sol"
        contract = compiled.output["contracts"][source_name][name]
        source = (CONTRACTS_DIR / f"{name}.sol").read_bytes()
        out[name] = {
            "abi": contract["abi"],
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
            "compiler": compiled.version,
            "contractName": name,
            "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
            "settings": SETTINGS,
            "sourceName": source_name,
            "sourceSha256": hashlib.sha256(source).hexdigest(),
        }
    return out


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def artifact_path(name: str) -> Path:
    return BUILD_DIR / f"{name}.json"


def check(fresh: dict[str, dict[str, Any]]) -> list[str]:
    """Differences between freshly compiled and committed artifacts (empty if up to date)."""
    problems: list[str] = []
    for name, new in fresh.items():
        path = artifact_path(name)
        if not path.is_file():
            problems.append(f"{path.relative_to(REPO)} is missing")
            continue
        old = json.loads(path.read_text("utf-8"))
        for field in CHECKED_FIELDS:
            if old.get(field) != new[field]:
                problems.append(f"{path.relative_to(REPO)}: {field} differs from a fresh compile")
        if _short_version(str(old.get("compiler", ""))) != _short_version(new["compiler"]):
            problems.append(
                f"{path.relative_to(REPO)}: built with {old.get('compiler')}, "
                f"this compile used {new['compiler']}"
            )
        if path.read_text("utf-8") != render(old):
            problems.append(f"{path.relative_to(REPO)} is not in canonical form")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="recompile in memory and fail if the committed artifacts differ",
    )
    args = parser.parse_args(argv)
    try:
        fresh = artifacts(compile_all())
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(fresh)
        if problems:
            print("error: committed contract artifacts are stale:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            print(
                "run `python scripts/compile_contracts.py` and commit contracts/build/",
                file=sys.stderr,
            )
            return 1
        print(f"contract artifacts are up to date ({', '.join(fresh)})")
        return 0
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in fresh.items():
        path = artifact_path(name)
        path.write_text(render(artifact), "utf-8")
        print(f"wrote {path.relative_to(REPO)} (solc {artifact['compiler']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
