"""``python scripts/bench.py auth``: rate limits and the write path under concurrent bursts.

Runs ``honest-metering serve`` (one worker, ``HM_ENV=development``: production's
Argon2 parameters, 64 MiB a hash; ``--env test``: the cheapest) on a fresh data
dir, SQLite by default or ``--database-url``, and fires bursts of concurrent
requests, all released at once by a barrier. Clients bind to distinct loopback
addresses (127.0.0.0/8), so the server sees one address or many, as a scenario
needs:

- ``login``: 60 wrong passwords for one account from one address. Counts how
  many were checked (401) and how many refused (429): the limit is 5.
- ``spread``: 60 wrong passwords for one account from 60 addresses, then the
  owner's correct password from a fresh address (200: no lock-out by others).
- ``register``: 60 registrations from one address: how many were accepted
  (the limit is 20 an hour).
- ``burst``: 60 registrations from 60 addresses while one client reads the
  public shop page over and over: the page's worst and median time, and the
  registrations' statuses and duration.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from served import answers, free_port, local_client, serve_argv, served, service_env

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789abcdef0123456789"
PASSWORD = "correct horse battery"
N = 60


def _client(address: str, port: int) -> httpx.Client:
    return local_client(port, address, timeout=180)


def _uscc(n: int) -> str:
    sys.path.insert(0, str(ROOT))
    from backend.uscc import ALPHABET, compute_check_chars

    digits = []
    for _ in range(6):
        n, r = divmod(n, len(ALPHABET))
        digits.append(ALPHABET[r])
    prefix = "92511923MA" + "".join(reversed(digits))
    return prefix + compute_check_chars(prefix)


def _body(n: int) -> dict[str, Any]:
    return {
        "uscc": _uscc(n),
        "name": f"巴中市测试超市{n}号店",
        "sector": "retail",
        "region_code": "511902",
        "address": "巴中市巴州区江北大道1号",
        "contact_person": "张三",
        "contact_phone": "13800001234",
        "password": PASSWORD,
    }


def _burst(calls: list[Callable[[], httpx.Response]]) -> tuple[list[Any], float]:
    """Run ``calls`` at once (a barrier releases them together); statuses and seconds."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> Any:
        barrier.wait()
        try:
            resp = call()
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if resp.status_code >= 500 or resp.status_code == 429:
            return f"{resp.status_code} {resp.json().get('error')}"
        return resp.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(run, calls))
    return results, time.perf_counter() - t0


def _count(results: list[Any]) -> str:
    return ", ".join(f"{v} x {k}" for k, v in sorted(collections.Counter(results).items(), key=str))


def _login(c: httpx.Client, username: str, password: str) -> Callable[[], httpx.Response]:
    return lambda: c.post("/api/auth/token", data={"username": username, "password": password})


def bench_auth(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        extra = {"HM_LOG_LEVEL": "warning", "HM_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        if args.database_url:
            extra["HM_DATABASE_URL"] = args.database_url
        env = service_env(Path(tmp) / "data", env=args.env, secret=SECRET, **extra)
        with served(serve_argv(port), env=env, output=None,
                    ready=lambda: answers(port, "127.0.0.2")):
            with _client("127.0.0.2", port) as c:
                owner = _body(0)
                resp = c.post("/api/merchants", json=owner)
                assert resp.status_code == 201, resp.text
            uscc = owner["uscc"]
            print(f"database: {args.database_url or 'SQLite (embedded default)'}")
            scenarios = args.scenarios.split(",")
            if "login" in scenarios:
                with _client("127.0.0.3", port) as c:
                    results, took = _burst([_login(c, uscc, f"wrong {i}!") for i in range(N)])
                checked = results.count(401)
                print(f"login:    {N} concurrent wrong passwords, one address: {checked} checked "
                      f"(limit 5); {_count(results)}; {took:.1f} s")
            if "spread" in scenarios:
                other = _body(1)
                with _client("127.0.0.2", port) as c:
                    assert c.post("/api/merchants", json=other).status_code == 201
                clients = [_client(f"127.0.2.{i + 1}", port) for i in range(N)]
                try:
                    results, took = _burst(
                        [_login(c, other["uscc"], f"wrong {i}!") for i, c in enumerate(clients)]
                    )
                finally:
                    for c in clients:
                        c.close()
                with _client("127.0.3.1", port) as c:
                    owner_status = _login(c, other["uscc"], PASSWORD)().status_code
                print(f"spread:   {N} concurrent wrong passwords from {N} addresses: "
                      f"{results.count(401)} checked; {_count(results)}; {took:.1f} s; then the "
                      f"owner's password from a fresh address: {owner_status}")
            if "register" in scenarios:
                with _client("127.0.0.4", port) as c:
                    results, took = _burst([
                        (lambda b=_body(100 + i): c.post("/api/merchants", json=b))  # type: ignore[misc]
                        for i in range(N)
                    ])
                print(f"register: {N} concurrent registrations, one address: "
                      f"{results.count(201)} accepted (limit 20); {_count(results)}; {took:.1f} s")
            if "burst" in scenarios:
                clients = [_client(f"127.0.1.{i + 1}", port) for i in range(N)]
                stop = threading.Event()
                page_times: list[float] = []
                page_status: list[int] = []

                def read_page() -> None:
                    with _client("127.0.0.5", port) as c:
                        while not stop.is_set():
                            t0 = time.perf_counter()
                            r = c.get(f"/merchants/{uscc}", headers={"Accept": "text/html"})
                            page_times.append(time.perf_counter() - t0)
                            page_status.append(r.status_code)
                            time.sleep(0.05)

                with _client("127.0.0.5", port) as c:  # warm: the page is built once
                    base = []
                    for _ in range(10):
                        t0 = time.perf_counter()
                        c.get(f"/merchants/{uscc}", headers={"Accept": "text/html"})
                        base.append(time.perf_counter() - t0)
                reader = threading.Thread(target=read_page)
                reader.start()
                try:
                    results, took = _burst([
                        (lambda c=c, b=_body(1000 + i): c.post("/api/merchants", json=b))  # type: ignore[misc]
                        for i, c in enumerate(clients)
                    ])
                finally:
                    stop.set()
                    reader.join()
                    for c in clients:
                        c.close()
                print(f"burst:    {N} concurrent registrations from {N} addresses: "
                      f"{_count(results)}; {took:.1f} s")
                print(f"          shop page during the burst: {len(page_times)} reads, worst "
                      f"{max(page_times):.2f} s, median {statistics.median(page_times):.3f} s "
                      f"(idle median {statistics.median(base):.3f} s); statuses "
                      f"{_count(page_status)}")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("auth", help="rate limits and writes under 60-request concurrent bursts")
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp data dir")
    p.add_argument("--scenarios", default="login,spread,register,burst")
    p.add_argument(
        "--env", default="development", choices=("development", "test"),
        help="test: the cheapest Argon2 parameters (the hash no longer dominates)",
    )
    p.set_defaults(func=bench_auth)
