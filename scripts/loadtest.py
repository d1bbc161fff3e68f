"""Load test of the production path: N uvicorn workers on PostgreSQL with a real
JSON-RPC node, driven over loopback. Bounded and self-stopping.

    python scripts/loadtest.py                       # temp PG database + anvil, 2 workers
    python scripts/loadtest.py --workers 2 --duration 15 --concurrency 32
    python scripts/loadtest.py --database-url postgresql://... --ledger-url http://... \\
        --ledger-key 0x...

What it does:

1. Makes a fresh PostgreSQL database (on ``--postgres``; dropped afterwards unless
   ``--keep``) or uses ``--database-url``; starts anvil from node_modules unless
   ``--ledger-url`` is given.
2. Seeds ``--merchants`` made-up merchants with ``honest-metering demo`` (two years of
   pledges and verifications) and anchors them with ``honest-metering anchor --once``.
3. Starts ``honest-metering serve --workers N`` with ``HM_ENV=production``.
4. Runs one phase per kind of request, each for ``--duration`` seconds (and at most
   ``--max-requests``) with ``--concurrency`` keep-alive connections: the trivial
   ``/healthz`` first (the same-run baseline), then merchant lookups (API and page),
   searches, proof-bundle downloads, writes (supervision outcomes by a regulator), and
   a mix of all of them. Before the page phases, ``page_first`` visits every shop page
   once (each is assembled, rendered and kept: a first visit's cost); ``page_cond``
   asks for a hot set of 300 pages with ``If-None-Match`` on ``--conditional`` of the
   requests (a returning visitor or a CDN revalidating). Prints requests/s,
   p50/p95/p99 latency, errors and the ratio to the baseline for each.
5. Waits until every record is anchored, checks that every accepted write is in the
   log and anchored, and runs ``honest-metering audit``.

The client is a minimal HTTP/1.1 keep-alive client on asyncio (uvloop when present):
httpx would spend more CPU than the server on this 2-core machine. Exit status: 0
when every request succeeded and the audit passed, 1 otherwise; ``--check`` also
fails when a target (``--target-lookups``, ``--target-writes``) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
# anvil's first well-known development account (public test key, funded by anvil).
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEMO_REGULATOR = ("regulator", "demo-regulator-2025")  # seeded by `honest-metering demo`
SECRET_KEY = "loadtest-secret-key-0123456789abcdef-0123456789"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


# --- the HTTP client ---------------------------------------------------------------------


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for this service."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.etag: str | None = None  # of the last response

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            await self.close()
            raise HttpError("connection closed by the server")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        self.etag = None
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"etag":
                self.etag = value.strip().decode()
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            data = b"".join(parts)
        else:
            data = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, data


# --- phases ----------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: str = ""
    kind: str = ""
    ok: tuple[int, ...] = (200,)
    # Called with the response body of a successful request (e.g. to keep a write's id).
    on_ok: Callable[[bytes], None] | None = None
    # Called with the ETag of a successful response.
    on_etag: Callable[[str], None] | None = None


@dataclass
class PhaseResult:
    name: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None
    postgres_cpu_s: float | None = None

    def per_request_ms(self, cpu_s: float | None) -> str:
        if cpu_s is None or not self.count:
            return "-"
        return f"{1000 * cpu_s / self.count:.2f}"

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


async def run_phase(
    name: str,
    host: str,
    port: int,
    make_request: Callable[[random.Random], Request],
    *,
    duration: float,
    concurrency: int,
    max_requests: int,
) -> PhaseResult:
    result = PhaseResult(name, 0.0)
    deadline = time.monotonic() + duration
    budget = [max_requests]

    async def client(seed: int) -> None:
        rnd = random.Random(seed)
        conn = Connection(host, port)
        try:
            while time.monotonic() < deadline and budget[0] > 0:
                budget[0] -= 1
                req = make_request(rnd)
                t0 = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(
                        conn.request(req.method, req.path, body=req.body, headers=req.headers),
                        timeout=30,
                    )
                except (
                    TimeoutError, OSError, HttpError, ValueError, asyncio.IncompleteReadError
                ) as exc:
                    key = f"{req.kind}: {type(exc).__name__}"
                    result.errors[key] = result.errors.get(key, 0) + 1
                    await conn.close()
                    continue
                elapsed = time.perf_counter() - t0
                if status in req.ok:
                    result.latencies.append(elapsed)
                    kind = f"{req.kind} {status}" if status == 304 else req.kind
                    result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
                    if req.on_ok is not None:
                        req.on_ok(data)
                    if req.on_etag is not None and conn.etag:
                        req.on_etag(conn.etag)
                else:
                    try:
                        err = json.loads(data).get("error", "")
                    except ValueError:
                        err = ""
                    key = f"{req.kind}: {status} {err}".rstrip()
                    result.errors[key] = result.errors.get(key, 0) + 1
        finally:
            await conn.close()

    cpu0 = time.process_time()
    t0 = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.seconds = time.monotonic() - t0
    result.client_cpu_s = time.process_time() - cpu0
    return result


# --- CPU accounting --------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds of each live process (Linux /proc)."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the workers, also under ``--py-spy``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for c in (task / "children").read_text().split():
                out += [int(c), *children(int(c))]
    return out


@dataclass
class CpuMeter:
    """CPU used by the server's processes and by PostgreSQL's backends for its database
    (when PostgreSQL runs on this machine), between ``start`` and ``stop``."""

    server_pid: int
    database_url: str
    before: dict[str, dict[int, float]] = field(default_factory=dict)

    def _pids(self) -> dict[str, list[int]]:
        import psycopg

        server = [self.server_pid, *children(self.server_pid)]
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            backends = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")]
        return {"server": server, "postgres": backends}

    def start(self) -> None:
        self.before = {k: cpu_seconds(v) for k, v in self._pids().items()}

    def stop(self) -> dict[str, float]:
        used = {}
        for k, pids in self._pids().items():
            now = cpu_seconds(pids)
            # Processes that started meanwhile count from zero.
            used[k] = sum(now[p] - self.before.get(k, {}).get(p, 0.0) for p in now)
        return used


# --- the system under test ----------------------------------------------------------------


def anvil_command() -> list[str] | None:
    for binary in sorted(ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if os.access(binary, os.X_OK):
            return [str(binary)]
    launcher = ROOT / "node_modules" / ".bin" / "anvil"
    if launcher.exists() and shutil.which("node"):
        return [str(launcher)]
    return None


@contextlib.contextmanager
def process(cmd: list[str], *, env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    if log:
        out.close()  # type: ignore[union-attr]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@contextlib.contextmanager
def temp_database(admin_url: str, keep: bool) -> Iterator[str]:
    import psycopg

    name = f"hm_loadtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if keep:
            say(f"kept database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(args: list[str], env: dict[str, str], *, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"honest-metering {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def http_json(port: int, method: str, path: str, *, form: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> Any:
    import httpx

    resp = httpx.request(method, f"http://127.0.0.1:{port}{path}", data=form,
                         headers=headers, timeout=30)
    resp.raise_for_status()
    return resp.json()


# --- the run ---------------------------------------------------------------------------


@dataclass
class Dataset:
    usccs: list[str]
    names: list[str]
    regions: list[str]
    anchored_record_ids: list[str]


def analyze(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def load_dataset(database_url: str) -> Dataset:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT uscc, name, region_code FROM merchant").fetchall()
        anchored = int(conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoint")
                       .fetchone()[0])  # type: ignore[index]
        rids = [r[0] for r in conn.execute(
            "SELECT record_id FROM log_leaf WHERE leaf_index < %s", (anchored,))]
    return Dataset(
        usccs=[r[0] for r in rows],
        names=[r[1] for r in rows],
        regions=sorted({r[2] for r in rows}),
        anchored_record_ids=rids,
    )


def anchored_state(database_url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        size = int(conn.execute("SELECT size FROM log_head").fetchone()[0])  # type: ignore[index]
        cp = int(conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoint")
                 .fetchone()[0])  # type: ignore[index]
    return size, cp


def print_table(results: list[PhaseResult], baseline: PhaseResult) -> None:
    print()
    print(f"{'phase':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7} {'vs /healthz':>11} {'client cpu':>10} "
          f"{'server cpu/req':>14} {'pg cpu/req':>10}")
    for r in results:
        ratio = r.rps / baseline.rps if baseline.rps else float("nan")
        print(f"{r.name:<10} {r.count:>9} {r.rps:>8.0f} {r.pct(50):>8.1f} {r.pct(95):>8.1f} "
              f"{r.pct(99):>8.1f} {r.error_count:>7} {ratio:>10.2f}x "
              f"{100 * r.client_cpu_s / r.seconds:>9.0f}% "
              f"{r.per_request_ms(r.server_cpu_s):>11} ms "
              f"{r.per_request_ms(r.postgres_cpu_s):>7} ms")
    for r in results:
        for key, n in sorted(r.errors.items()):
            print(f"  {r.name}: {n} x {key}")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    p.add_argument("--max-requests", type=int, default=500_000, help="per phase")
    p.add_argument("--merchants", type=int, default=3000, help="merchants to seed")
    p.add_argument("--phases", default="baseline,lookup,page,search,proof,write,mixed",
                   help="comma-separated; baseline always runs first")
    p.add_argument("--no-first-visits", dest="first_visits", action="store_false",
                   help="skip the page_first phase (every shop page once, before the "
                        "page phases)")
    p.add_argument("--first-visit-timeout", type=float, default=300.0,
                   help="at most this many seconds for page_first")
    p.add_argument("--conditional", type=float, default=0.9,
                   help="share of If-None-Match requests in the page_cond phase")
    p.add_argument("--database-url", help="use this (empty) database instead of a temp one")
    p.add_argument("--postgres", default=os.environ.get(
        "HM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server to create the temp database on")
    p.add_argument("--ledger-url", help="JSON-RPC node (default: start anvil)")
    p.add_argument("--ledger-key", default=ANVIL_KEY, help="signing key for --ledger-url")
    p.add_argument("--keep", action="store_true", help="keep the temp database and data dir")
    p.add_argument("--anchor-timeout", type=float, default=120.0)
    p.add_argument("--target-lookups", type=float, default=1000.0)
    p.add_argument("--target-writes", type=float, default=300.0)
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--py-spy", metavar="FILE",
                   help="run the server under py-spy and write its collapsed stacks here")
    p.add_argument("--py-spy-binary", default=str(Path(sys.executable).with_name("py-spy")),
                   help="the py-spy program (default: beside this Python)")
    p.add_argument("--server-env", action="append", default=[], metavar="HM_NAME=VALUE",
                   help="a setting for the server under test (repeatable), e.g. "
                        "HM_GIL_SWITCH_INTERVAL_S=0.005")
    args = p.parse_args(argv)

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="hm-loadtest-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, True)
        database_url = args.database_url or stack.enter_context(
            temp_database(args.postgres, args.keep)
        )
        ledger_url = args.ledger_url
        if ledger_url is None:
            command = anvil_command()
            if command is None:
                say("anvil is not installed under node_modules (run: npm ci) and no "
                    "--ledger-url was given")
                return 2
            anvil_port = free_port()
            stack.enter_context(process(
                [*command, "--host", "127.0.0.1", "--port", str(anvil_port), "--silent"]))
            ledger_url = f"http://127.0.0.1:{anvil_port}"
            wait_for(lambda: _port_open(anvil_port), timeout=30, what="anvil")
        port = free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("HM_")}
        base_env.update({
            "HM_DATA_DIR": str(tmp / "data"),
            "HM_DATABASE_URL": database_url,
            "HM_LEDGER_URL": ledger_url,
            "HM_LEDGER_KEY": args.ledger_key,
            "HM_SECRET_KEY": SECRET_KEY,
            "HM_DEMO_ON_FIRST_START": "false",
            # The log's origin (and so its key) is named after the public address.
            "HM_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        })
        setup_env = {**base_env, "HM_ENV": "development"}
        serve_env = {**base_env, "HM_ENV": "production"}
        for item in args.server_env:
            name, sep, value = item.partition("=")
            if not sep or not name.startswith("HM_"):
                say(f"--server-env takes HM_NAME=VALUE, not {item!r}")
                return 2
            serve_env[name] = value

        t0 = time.monotonic()
        say(f"seeding {args.merchants} merchants (honest-metering demo) ...")
        cli(["demo", "--merchants", str(args.merchants)], setup_env)
        # Production needs the log's signing key (pages name the trust root it signs).
        cli(["log-key", "rotate"], setup_env)
        # Deploys the contract (remembered in the database) and anchors the seed.
        say(cli(["anchor", "--once"], setup_env).strip())
        # Statistics, as autovacuum would have gathered them on a live database (the
        # planner picks the trigram index only when it knows the table is large).
        analyze(database_url)
        data = load_dataset(database_url)
        say(f"seeded {len(data.usccs)} merchants, {len(data.anchored_record_ids)} records "
            f"in {time.monotonic() - t0:.0f}s")

        log = tmp / "serve.log"
        serve = [sys.executable, "-m", "backend.cli", "serve", "--workers", str(args.workers),
                 "--port", str(port)]
        if args.py_spy:
            # Sample the server and its workers (py-spy must be installed; it is not a
            # dependency of the service). Collapsed stacks, one line per stack.
            serve = [args.py_spy_binary, "record", "--subprocesses", "--format", "raw",
                     "--rate", "200", "--output", args.py_spy, "--", *serve]
        server = stack.enter_context(process(serve, env=serve_env, log=log))
        if args.py_spy:
            # py-spy writes its file when interrupted (before the server is stopped).
            stack.callback(_interrupt, server)

        def up() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
            return _port_open(port)

        wait_for(up, timeout=120, what="the server")
        wait_for(lambda: log.read_text().count("Application startup complete") >= args.workers,
                 timeout=120, what=f"{args.workers} workers")
        token = http_json(port, "POST", "/api/auth/token", form={
            "username": DEMO_REGULATOR[0], "password": DEMO_REGULATOR[1]})["access_token"]
        # The trust root is issued once at deployment and published (docs/operations.md);
        # pages pin it and name it in their ETag, so issue it before the first page.
        http_json(port, "GET", "/.well-known/honest-metering/trust-root.json")
        say(f"server up: {args.workers} worker(s) on port {port}; log {log}")

        written: list[str] = []
        phases = build_phases(data, token, written, conditional=args.conditional)
        wanted = ["baseline"] + [n for n in args.phases.split(",") if n and n != "baseline"]
        unknown = set(wanted) - phases.keys()
        if unknown:
            say(f"unknown phase(s): {', '.join(sorted(unknown))}")
            return 2

        results: list[PhaseResult] = []
        if args.first_visits and {"page", "page_cond", "mixed"} & set(wanted):
            # Every shop page once, as first visits (assembled, rendered and kept), before
            # the phases that read them again: a page's cost on its first visit and after.
            wanted.insert(1, "page_first")
        for name in wanted:
            first = name == "page_first"
            duration = args.first_visit_timeout if first else args.duration
            say(f"phase {name}: {duration:.0f}s, {args.concurrency} connections ...")
            meter = CpuMeter(server.pid, database_url)
            meter.start()
            result = _run(run_phase(
                name, "127.0.0.1", port, phases[name], duration=duration,
                concurrency=args.concurrency,
                max_requests=len(data.usccs) if first else args.max_requests))
            used = meter.stop()
            result.server_cpu_s = used["server"]
            result.postgres_cpu_s = used["postgres"] or None
            results.append(result)
            time.sleep(1.0)  # let the server settle (and the anchorer catch up)
        print_table(results, results[0])
        for r in results:
            if len(r.by_kind) > 1:
                print(f"{r.name}: answers by kind {dict(sorted(r.by_kind.items()))}")
        for group, (n, mean) in group_commits(port).items():
            print(f"group commit {group}: {n} transaction(s), {mean:.1f} write(s) each on average")

        say("waiting for every record to be anchored ...")
        t_wait = time.monotonic()
        size, _ = anchored_state(database_url)
        wait_for(lambda: anchored_state(database_url)[1] >= size, timeout=args.anchor_timeout,
                 what="every record to be anchored")
        say(f"all {size} records anchored {time.monotonic() - t_wait:.1f}s after the last "
            "phase")
        missing = writes_not_anchored(database_url, written)
        audit = subprocess.run(
            [sys.executable, "-m", "backend.cli", "audit", "--quiet", "--ledger", ledger_url],
            cwd=ROOT, env=serve_env, capture_output=True, text=True, timeout=600,
        )
        print(f"writes accepted: {len(written)}; in the log and anchored: "
              f"{len(written) - len(missing)}")
        print(((audit.stdout or audit.stderr).strip().splitlines() or ["audit: no output"])[-1])

        errors = sum(r.error_count for r in results)
        by_name = {r.name: r for r in results}
        lookups = by_name.get("lookup")
        writes = by_name.get("write")
        verdicts = []
        if lookups is not None:
            verdicts.append(("lookups/s", lookups.rps, args.target_lookups))
        if writes is not None:
            verdicts.append(("writes/s", writes.rps, args.target_writes))
        for what, got, target in verdicts:
            print(f"target {what} >= {target:.0f}: {got:.0f} "
                  f"{'met' if got >= target else 'MISSED'}")
        print(f"errors: {errors}; server: {args.workers} worker(s); machine: "
              f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
        ok = errors == 0 and not missing and audit.returncode == 0
        if args.check and any(got < target for _, got, target in verdicts):
            ok = False
        return 0 if ok else 1


def group_commits(port: int) -> dict[str, tuple[int, float]]:
    """Transactions and mean writes per transaction of each group commit, from /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            prefix = f"hm_group_commit_size{suffix}{{group=\""
            if line.startswith(prefix):
                group = line[len(prefix):].split('"', 1)[0]
                into[group] = float(line.rsplit(" ", 1)[1])
    return {g: (int(counts[g]), sums[g] / counts[g]) for g in sums if counts.get(g)}


def writes_not_anchored(database_url: str, record_ids: list[str]) -> list[str]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        anchored = int(conn.execute("SELECT coalesce(max(tree_size), 0) FROM checkpoint")
                       .fetchone()[0])  # type: ignore[index]
        found = {
            rid for (rid,) in conn.execute(
                "SELECT record_id FROM log_leaf WHERE record_id = ANY(%s) AND leaf_index < %s",
                (record_ids, anchored),
            )
        }
    return [r for r in record_ids if r not in found]


HOT_PAGES = 300


def build_phases(
    data: Dataset, token: str, written: list[str], *, conditional: float = 0.9
) -> dict[str, Callable[[random.Random], Request]]:
    auth = f"Authorization: Bearer {token}\r\n"
    checked_on = (date.today() - timedelta(days=2)).isoformat()
    fragments = sorted({n[i:i + 2] for n in data.names[:200] for i in (3, 6) if len(n) > i + 2})

    def keep(body: bytes) -> None:
        written.append(json.loads(body)["record_id"])

    def baseline(rnd: random.Random) -> Request:
        return Request("GET", "/healthz", kind="healthz")

    def lookup(rnd: random.Random) -> Request:
        return Request("GET", f"/api/merchants/{rnd.choice(data.usccs)}", kind="lookup")

    def page(rnd: random.Random) -> Request:
        return Request("GET", f"/merchants/{rnd.choice(data.usccs)}", kind="page")

    etags: dict[str, str] = {}
    hot = data.usccs[:HOT_PAGES]

    unvisited = list(data.usccs)

    def page_first(rnd: random.Random) -> Request:
        uscc = unvisited.pop() if unvisited else rnd.choice(data.usccs)
        return Request("GET", f"/merchants/{uscc}", kind="page")

    def page_cond(rnd: random.Random) -> Request:
        """A page as a returning visitor or a CDN asks for it: with the ETag it has, for
        ``conditional`` of the requests (a hot set of shops, so that ETags are known)."""
        uscc = rnd.choice(hot)
        known = etags.get(uscc)
        header = ""
        if known is not None and rnd.random() < conditional:
            header = f"If-None-Match: {known}\r\n"

        def remember(tag: str, uscc: str = uscc) -> None:
            etags[uscc] = tag

        return Request("GET", f"/merchants/{uscc}", headers=header, kind="page",
                       ok=(200, 304), on_etag=remember)

    def search(rnd: random.Random) -> Request:
        if rnd.random() < 0.5:
            q = quote(rnd.choice(fragments))
            return Request("GET", f"/api/merchants?q={q}&limit=20", kind="search")
        return Request("GET", f"/api/merchants?region={rnd.choice(data.regions)}&limit=20",
                       kind="search")

    def proof(rnd: random.Random) -> Request:
        rid = rnd.choice(data.anchored_record_ids)
        return Request("GET", f"/api/records/{rid}/proof", kind="proof")

    def write(rnd: random.Random) -> Request:
        body = json.dumps({
            "kind": "spot_check",
            "uscc": rnd.choice(data.usccs),
            "result": "未发现问题",
            "checked_on": checked_on,
            "authority": "巴中市市场监督管理局",
        }).encode()
        return Request("POST", "/api/supervision/records", body=body, headers=auth,
                       kind="write", ok=(201,), on_ok=keep)

    mix = [(lookup, 50), (page, 10), (search, 15), (proof, 15), (write, 10)]
    population = [f for f, _ in mix]
    weights = [w for _, w in mix]

    def mixed(rnd: random.Random) -> Request:
        return rnd.choices(population, weights)[0](rnd)

    return {"baseline": baseline, "lookup": lookup, "page": page, "page_first": page_first,
            "page_cond": page_cond,
            "search": search,
            "proof": proof, "write": write, "mixed": mixed}


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(120)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(coro: Coroutine[Any, Any, PhaseResult]) -> PhaseResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    sys.exit(main())
