"""The house rules that code review alone would not keep: imports point one way,
and every error a client can see has a name of its own.

Layers, lowest first (``../shared/design.md``): core (settings, db, errors,
time) -> ledger -> accounts -> merchants -> pledges -> credit -> inspections ->
supervision -> {disclosure, shops (a merchant's composed public view), verification,
demo} -> app/cli. A module may import its own package and
any lower layer. ``KNOWN_UPWARD`` lists the upward imports the code still has
(debt from before the rule): the test fails on any import not in it, and on an
entry that is no longer needed, so the list can only shrink.
"""

from __future__ import annotations

import ast
import collections
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import backend
import backend.domains  # noqa: F401  (every domain loaded)
from backend.errors import DomainError

ROOT = Path(__file__).resolve().parents[1] / "backend"

LAYERS: dict[str, int] = {
    "core": 0,
    "ledger": 1,
    "accounts": 2,
    "merchants": 3,
    "pledges": 4,
    "credit": 5,
    "inspections": 6,
    "supervision": 7,
    "disclosure": 8,
    "shops": 8,
    "verification": 8,
    "demo": 8,
    "app": 9,
}
CORE_MODULES = {"config", "db", "errors", "timeutil", "uscc", "inputs", "csvsafe",
                "privatefiles", "asyncreads", "background",
                "groupcommit"}
# Core infrastructure that lives beside the server code in backend/ops.
CORE_OPS = {"backend.ops.metrics", "backend.ops.logs", "backend.ops.parentdeath"}
# The running service's context (it holds the ledger client) and the FastAPI
# dependencies built on it sit right above the ledger.
LEDGER_MODULES = {"context", "deps"}
APP_MODULES = {"app", "cli", "routes", "domains", "models", "ops"}

# (from package, to package): upward imports still to be removed.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "backend":
        return None
    if len(parts) == 1:
        return "core"
    name = parts[1]
    if parts[-1] == "cli":
        return "app"  # command-line entry points sit on top, whatever folder they are in
    if name in CORE_MODULES or any(module.startswith(m) for m in CORE_OPS):
        return "core"
    if name in LEDGER_MODULES:
        return "ledger"
    if name in APP_MODULES:
        return "app"
    return name if name in LAYERS else "app"


def import_graph(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> the modules that import that way."""
    edges: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        src = package_of(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from backend.ops import logs`` imports the module backend.ops.logs.
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                dst = package_of(t)
                if src and dst and dst != src:
                    edges[(src, dst)].append(module)
    return edges


def upward(edges: dict[tuple[str, str], list[str]]) -> set[tuple[str, str]]:
    return {(a, b) for (a, b) in edges if LAYERS[b] > LAYERS[a]}


def test_imports_point_down() -> None:
    edges = import_graph()
    found = upward(edges)
    new = {e: sorted(set(edges[e])) for e in found - KNOWN_UPWARD}
    assert not new, f"upward imports (a package may import only lower layers): {new}"
    gone = KNOWN_UPWARD - found
    assert not gone, f"remove these from KNOWN_UPWARD, they no longer occur: {sorted(gone)}"


def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "backend"
    (pkg / "ledger").mkdir(parents=True)
    (pkg / "ledger" / "log.py").write_text("from backend.disclosure import web\n")
    assert upward(import_graph(pkg)) == {("ledger", "disclosure")}


def test_pure_cores_import_no_database_settings_or_network() -> None:
    pure = ["ledger/merkle.py", "ledger/records.py", "credit/rating.py",
            "inspections/selection.py", "ledger/projection.py"]
    banned = ("sqlmodel", "backend.config", "backend.db", "web3", "httpx", "requests")
    for rel in pure:
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        bad = [n for n in names if n.startswith(banned)]
        assert not bad, f"{rel} must stay pure, imports {bad}"


def _all_errors() -> dict[str, set[str]]:
    for m in pkgutil.walk_packages(backend.__path__, "backend."):
        if ".migrations" not in m.name:
            importlib.import_module(m.name)
    names: dict[str, set[str]] = collections.defaultdict(set)
    stack = [DomainError]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            names[sub.__name__].add(f"{sub.__module__}.{sub.__qualname__}")
            stack.append(sub)
    return names


def test_error_names_are_unique() -> None:
    """A client tells errors apart by name alone (``{"error": "<Name>"}``)."""
    dupes = {n: sorted(where) for n, where in _all_errors().items() if len(where) > 1}
    assert not dupes, f"error names used by more than one class: {dupes}"


def test_the_app_never_imports_the_demo_in_production(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from backend.app import create_app\n"
        "from backend.config import Settings\n"
        f"s = Settings(env='production', secret_key='p' * 40, data_dir={str(tmp_path)!r},\n"
        f"             database_url='sqlite:///{tmp_path}/db.sqlite3')\n"
        "create_app(s)\n"
        "bad = sorted(m for m in sys.modules if m.startswith('backend.demo'))\n"
        "assert not bad, bad\n"
        "s = Settings(env='development', data_dir=" + repr(str(tmp_path)) + ")\n"
        "create_app(s)\n"
        "assert 'backend.demo.seed' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT.parent, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
