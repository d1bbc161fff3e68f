"""``honest-metering verify --draw ID``: re-run a draw from what is published, and compare.

From the service's public API (``GET /api/draws/{id}``, ``/snapshot``,
``/recusals``) and any JSON-RPC view of the chain, it checks that

1. the ``draw.committed`` record hashes to the draw id, and that id is the
   ``drawId`` the contract holds, with the same snapshot root and seed hash:
   so every input in that record (item, scope, rates, inspectors per check,
   the inspector and recusal roots, the planned period) was fixed before the
   randomness existed;
2. the published snapshot, inspector directory and recusal pairs reproduce
   the committed roots (an entry added, dropped or re-tiered afterwards is
   caught here), and each "previous draw" recusal is in that draw's plan;
3. the contract's randomness is ``SHA-256(seed || blockhash(targetBlock))``
   for the revealed seed, whose hash is the committed one;
4. re-running :func:`backend.inspections.selection.run_draw` gives exactly the
   published plan: the ``draw.plan`` record and the assignments the service
   shows (or the same ``NotEnoughInspectors`` failure as ``draw.failed``).

It pins a trust root (``--trust-root``): the chain and contract that committed the draw
must be the ones the trust root names, never the ones the service's JSON names (a copy
of the service on a chain of its own could otherwise commit and "verify" any plan).
Without one every check still runs, but the verdict is never VERIFIED.

What it cannot prove from outside: that the snapshot lists *every* eligible
merchant (compare it with the public merchant registry), or that no conflict
of interest went undeclared.

This module must never import the service's database layer or its settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from web3 import Web3

from backend.inspections import onchain, selection
from backend.ledger import merkle
from backend.ledger.contract import ABI, load_artifact
from backend.ledger.records import InvalidRecord, parse_canonical
from backend.ledger.trustroot import TrustRoot

Status = Literal["ok", "FAIL"]


class _Stop(Exception):
    """Ends the checks early; the verdict already says why."""


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str


@dataclass
class DrawVerdict:
    ref: str
    steps: list[Step] = field(default_factory=list)
    incomplete: bool = False
    draw_id: str | None = None
    number: int | None = None
    outcome: str | None = None
    ledger_url: str | None = None
    trust_root: TrustRoot | None = None

    @property
    def ok(self) -> bool:
        return (
            bool(self.steps) and not self.incomplete and all(s.status == "ok" for s in self.steps)
        )

    @property
    def reason(self) -> str | None:
        return next((s.detail for s in self.steps if s.status == "FAIL"), None)

    def add(self, name: str, status: Status, detail: str) -> bool:
        self.steps.append(Step(name, status, detail))
        return status == "ok"

    def fail(self, name: str, detail: str, *, incomplete: bool = False) -> _Stop:
        """Record a failure; ``raise verdict.fail(...)`` stops the checks."""
        self.incomplete = self.incomplete or incomplete
        self.add(name, "FAIL", detail)
        return _Stop(detail)

    def summary(self) -> str:
        if self.ok:
            return (
                f"VERIFIED: draw no. {self.number} ({self.draw_id}) was committed on chain "
                "before its randomness existed, and re-running it from the published inputs "
                f"gives exactly the published outcome ({self.outcome}); chain and contract "
                f"pinned by trust root {self.trust_root.fingerprint if self.trust_root else '—'}."
            )
        if self.incomplete:
            return f"NOT VERIFIED (could not complete the check): {self.reason}"
        return f"NOT VERIFIED: {self.reason}"

    def render(self) -> str:
        width = max((len(s.name) for s in self.steps), default=0)
        lines = [
            f"  [{s.status}]{' ' * (6 - len(s.status))}{s.name:<{width}}  {s.detail}"
            for s in self.steps
        ]
        return "\n".join([*lines, "", self.summary()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "incomplete": self.incomplete,
            "draw_id": self.draw_id,
            "number": self.number,
            "reason": self.reason,
            "ledger_url": self.ledger_url,
            "trust_root": None if self.trust_root is None else self.trust_root.fingerprint,
            "checks": [s.__dict__ for s in self.steps],
            "summary": self.summary(),
        }


class _Api:
    def __init__(self, http: httpx.Client, base: str, v: DrawVerdict) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.v = v

    def get(self, name: str, path: str) -> Any:
        try:
            resp = self.http.get(self.base + path)
        except httpx.HTTPError as exc:
            raise self.v.fail(
                name,
                f"cannot reach {self.base}{path}: {type(exc).__name__}: {exc}",
                incomplete=True,
            ) from None
        if resp.status_code != 200:
            raise self.v.fail(
                name,
                f"GET {path} answered {resp.status_code}: {resp.text[:300]}",
                incomplete=True,
            )
        try:
            return resp.json()
        except ValueError:
            raise self.v.fail(name, f"GET {path} did not answer JSON", incomplete=True) from None


def _record(v: DrawVerdict, detail: dict[str, Any], rtype: str) -> dict[str, Any] | None:
    """The envelope of the draw's record of ``rtype`` after checking its hash and form."""
    found = [r for r in detail.get("records", []) if r.get("type") == rtype]
    if not found:
        return None
    r = found[0]
    data = str(r["canonical"]).encode("utf-8")
    leaf = merkle.leaf_hash(data).hex()
    if leaf != r["record_id"]:
        raise v.fail(
            rtype,
            f"the {rtype} record's bytes hash to {leaf}, not to its id {r['record_id']}: "
            "the record was changed",
        )
    try:
        env = parse_canonical(data)
    except InvalidRecord as exc:
        raise v.fail(rtype, f"the {rtype} record is not canonical: {exc}") from None
    if env.get("type") != rtype:
        raise v.fail(rtype, f"record {leaf} is a {env.get('type')}, not a {rtype}")
    env["record_id"] = leaf
    return env


def _refs(env: dict[str, Any]) -> set[str]:
    return {r.get("record") for r in env.get("refs", [])}


def _check_commitment(v: DrawVerdict, detail: dict[str, Any]) -> dict[str, Any]:
    env = _record(v, detail, "draw.committed")
    if env is None:
        raise v.fail("commitment", "the draw lists no draw.committed record")
    if env["record_id"] != detail["id"]:
        raise v.fail(
            "commitment",
            f"the draw.committed record is {env['record_id']}, but the draw's id is {detail['id']}",
        )
    body: dict[str, Any] = env["body"]
    if detail.get("commitment") != body:
        raise v.fail(
            "commitment", "the commitment the service shows differs from its draw.committed record"
        )
    v.add(
        "commitment",
        "ok",
        f"the draw.committed record hashes to the draw id {detail['id']}; it fixes item "
        f"{body['item']['item_id']}, {body['snapshot_size']} merchants, "
        f"{body['inspector_count']} inspectors, {body['recusal_count']} recusals, rates "
        f"{body['rates_bp']} and {body['per_check']} inspectors per check",
    )
    return body


def _check_snapshot(
    v: DrawVerdict, snap: dict[str, Any], body: dict[str, Any]
) -> list[selection.SnapshotEntry]:
    try:
        entries = [
            selection.SnapshotEntry(e["uscc"], e["tier"], e["region_code"], e["sector"])
            for e in snap["entries"]
        ]
        root = selection.snapshot_root(entries)
    except (selection.InvalidDrawInput, KeyError, TypeError) as exc:
        raise v.fail("snapshot", f"the published snapshot is malformed: {exc}") from None
    if root.hex() != body["snapshot_root"] or len(entries) != body["snapshot_size"]:
        raise v.fail(
            "snapshot",
            f"the published snapshot ({len(entries)} entries) has root {root.hex()}, but the "
            f"draw committed to {body['snapshot_size']} entries with root "
            f"{body['snapshot_root']}: the snapshot was altered after the commit",
        )
    v.add(
        "snapshot",
        "ok",
        f"the {len(entries)} published entries give the committed root {body['snapshot_root']}",
    )
    return entries


def _check_inspectors(
    v: DrawVerdict, detail: dict[str, Any], body: dict[str, Any]
) -> list[selection.InspectorEntry]:
    try:
        inspectors = [
            selection.InspectorEntry(i["id"], i["unit"], i["region_code"])
            for i in detail["inspectors"]
        ]
        root = selection.inspectors_root(inspectors)
    except (selection.InvalidDrawInput, KeyError, TypeError) as exc:
        raise v.fail("inspectors", f"the published directory is malformed: {exc}") from None
    if root.hex() != body["inspectors_root"] or len(inspectors) != body["inspector_count"]:
        raise v.fail(
            "inspectors",
            f"the published directory ({len(inspectors)} inspectors) has root {root.hex()}, "
            f"but the draw committed to {body['inspector_count']} with root "
            f"{body['inspectors_root']}",
        )
    v.add("inspectors", "ok", f"the {len(inspectors)} published inspectors give the committed root")
    return inspectors


def _check_recusals(
    v: DrawVerdict, api: _Api, rec: dict[str, Any], body: dict[str, Any]
) -> set[tuple[str, str]]:
    try:
        pairs = {(r["inspector_id"], r["uscc"]) for r in rec["items"]}
        root = selection.recusal_root(pairs, {})
    except (selection.InvalidDrawInput, KeyError, TypeError) as exc:
        raise v.fail("recusals", f"the published recusals are malformed: {exc}") from None
    if root.hex() != body["recusal_root"]:
        raise v.fail(
            "recusals",
            f"the {len(pairs)} published recusal pairs have root {root.hex()}, but the draw "
            f"committed to {body['recusal_root']}",
        )
    v.add("recusals", "ok", f"the {len(pairs)} published recusal pairs give the committed root")

    previous: dict[str, list[tuple[str, str]]] = {}
    for r in rec["items"]:
        if "previous" in r.get("sources", []):
            if not r.get("previous_draw"):
                raise v.fail("rotation", f"recusal {r['uscc']}/{r['inspector_id']} names no draw")
            previous.setdefault(r["previous_draw"], []).append((r["uscc"], r["inspector_id"]))
    for draw_id, wanted in sorted(previous.items()):
        other = api.get("rotation", f"/api/draws/{draw_id}")
        plan = other.get("plan") or {}
        planned = {(a["uscc"], i) for a in plan.get("assignments", []) for i in a["inspectors"]}
        missing = [p for p in wanted if p not in planned]
        if missing:
            raise v.fail(
                "rotation",
                f"recusals {missing[:3]} say draw {draw_id} assigned them, but its plan does not",
            )
    if previous:
        v.add(
            "rotation",
            "ok",
            f"{sum(len(w) for w in previous.values())} rotation recusal(s) match the plans of "
            f"{len(previous)} earlier draw(s)",
        )
    return pairs


NO_TRUST_ROOT = (
    "no trust root pinned: the chain and contract that committed the draw came from the "
    "service's own answer, which a copy of this software on a chain of its own could write "
    "(it would commit and reveal any plan it liked); pass --trust-root FILE|URL with the "
    "official trust root (/.well-known/honest-metering/trust-root.json, its fingerprint "
    "checked against the one the regulator publishes)"
)


def _check_pinned(v: DrawVerdict, body: dict[str, Any], root: TrustRoot) -> None:
    """The draw's chain and contract must be the ones the trust root names."""
    chain, pinned = body.get("chain") or {}, root.body.ledger
    wrong = []
    if chain.get("chain_id") != pinned.chain_id:
        wrong.append(f"chain {chain.get('chain_id')} (pinned: chain {pinned.chain_id})")
    if str(chain.get("contract", "")).lower() != pinned.contract_address.lower():
        wrong.append(
            f"contract {chain.get('contract')} (pinned: contract {pinned.contract_address})"
        )
    if wrong:
        raise v.fail(
            "trust root",
            "the draw was committed on " + " and ".join(wrong) + f", not what trust root "
            f"{root.fingerprint} pins: this draw is not from the official ledger",
        )
    v.add(
        "trust root",
        "ok",
        f"the draw was committed on chain {pinned.chain_id}, contract "
        f"{pinned.contract_address}: the ones trust root version {root.body.version} "
        f"({root.fingerprint}) pins",
    )


def _check_chain(
    v: DrawVerdict, w3: Web3, url: str, detail: dict[str, Any], body: dict[str, Any]
) -> onchain.OnChainDraw:

    chain = body["chain"]
    try:
        chain_id = int(w3.eth.chain_id)
        address = Web3.to_checksum_address(chain["contract"])
        code = bytes(w3.eth.get_code(address))
        contract = w3.eth.contract(address=address, abi=ABI)
        state = onchain.read_draw(contract, bytes.fromhex(detail["id"]))
    except Exception as exc:
        raise v.fail(
            "ledger",
            f"cannot read the ledger at {url}: {type(exc).__name__}: {exc}",
            incomplete=True,
        ) from None
    if chain_id != chain["chain_id"]:
        raise v.fail(
            "ledger",
            f"the ledger at {url} is chain {chain_id}; the draw was committed on chain "
            f"{chain['chain_id']}",
        )
    expected_code = bytes.fromhex(load_artifact()["deployedBytecode"].removeprefix("0x"))
    if code != expected_code:
        raise v.fail(
            "ledger",
            f"the code at {address} is not the published MeteringLedger contract "
            f"({len(code)} bytes, expected {len(expected_code)})",
        )
    v.add("ledger", "ok", f"{url} serves chain {chain_id}; {address} runs MeteringLedger")
    if not state.committed:
        raise v.fail("on-chain commit", f"the contract has no draw {detail['id']}")
    diffs = []
    if state.snapshot_root.hex() != body["snapshot_root"]:
        diffs.append(f"snapshot root 0x{state.snapshot_root.hex()}")
    if state.seed_hash.hex() != body["seed_hash"]:
        diffs.append(f"seed hash 0x{state.seed_hash.hex()}")
    if state.target_block != state.commit_block + int(chain["reveal_delay_blocks"]):
        diffs.append(
            f"target block {state.target_block} (commit block {state.commit_block} + "
            f"{chain['reveal_delay_blocks']} expected)"
        )
    if diffs:
        raise v.fail("on-chain commit", "the contract holds " + ", ".join(diffs))
    v.add(
        "on-chain commit",
        "ok",
        f"the contract holds drawId {detail['id']} (committed in block {state.commit_block}, "
        f"target block {state.target_block}) with the record's snapshot root and seed hash",
    )
    return state


def _check_randomness(
    v: DrawVerdict, w3: Web3, url: str, state: onchain.OnChainDraw, detail: dict[str, Any]
) -> bytes:
    computed_hash = hashlib.sha256(state.seed).digest()
    if computed_hash != state.seed_hash:
        raise v.fail("randomness", f"the revealed seed hashes to {computed_hash.hex()}")
    try:
        bhash = onchain.block_hash(w3, state.target_block)
    except Exception as exc:
        raise v.fail(
            "randomness",
            f"cannot read block {state.target_block} at {url}: {exc}",
            incomplete=True,
        ) from None
    local = selection.randomness(state.seed, bhash)
    if local != state.randomness:
        raise v.fail(
            "randomness",
            f"SHA-256(seed || blockhash({state.target_block})) = {local.hex()}, but the contract "
            f"holds {state.randomness.hex()}",
        )
    revealed = _record(v, detail, "draw.revealed")
    if revealed is None:
        raise v.fail(
            "randomness", "the draw is revealed on chain but lists no draw.revealed record"
        )
    rb = revealed["body"]
    if (rb["seed"], rb["randomness"], rb["block_hash"], rb["draw_id"]) != (
        state.seed.hex(),
        local.hex(),
        bhash.hex(),
        detail["id"],
    ) or detail["id"] not in _refs(revealed):
        raise v.fail("randomness", "the draw.revealed record disagrees with the chain")
    v.add(
        "randomness",
        "ok",
        f"revealed in block {state.reveal_block}: SHA-256(seed || blockhash({state.target_block}))"
        f" = {local.hex()}, as the contract computed",
    )
    return local


def _check_outcome(
    v: DrawVerdict,
    detail: dict[str, Any],
    body: dict[str, Any],
    randomness: bytes,
    entries: list[selection.SnapshotEntry],
    inspectors: list[selection.InspectorEntry],
    pairs: set[tuple[str, str]],
) -> None:
    try:
        plan = selection.run_draw(
            randomness, entries, body["rates_bp"], inspectors, body["per_check"], conflicts=pairs
        )
    except selection.NotEnoughInspectors as exc:
        failed = _record(v, detail, "draw.failed")
        if failed is None or detail.get("status") != "failed":
            raise v.fail(
                "plan", f"re-running the draw fails ({exc}), but the service shows a plan"
            ) from None
        fb = failed["body"]
        if (
            fb.get("uscc"), fb.get("needed"), fb.get("available"), fb.get("recused"),
            fb.get("at_cap"),
        ) != (
            exc.uscc,
            exc.needed,
            exc.available,
            exc.recused,
            exc.at_cap,
        ) or detail["id"] not in _refs(failed):
            raise v.fail("plan", f"re-running fails differently from draw.failed: {exc}") from None
        v.outcome = f"failed: {exc.uscc} could not be staffed"
        v.add("plan", "ok", f"re-running the draw fails exactly as published: {exc}")
        return
    computed = selection.plan_to_json(plan)
    env = _record(v, detail, "draw.plan")
    if env is None:
        raise v.fail("plan", "the draw lists no draw.plan record")
    if detail["id"] not in _refs(env):
        raise v.fail("plan", "the draw.plan record does not refer to this draw")
    problems = _plan_diff(env["body"], computed, "the draw.plan record")
    if detail.get("plan") != env["body"]:
        problems.append("the plan the service shows differs from its draw.plan record")
    if detail.get("plan_digest") not in (None, selection.plan_digest(plan)):
        problems.append(
            f"plan digest {detail.get('plan_digest')} shown, {selection.plan_digest(plan)} "
            "recomputed"
        )
    shown = [
        {"uscc": a["uscc"], "inspectors": [i["id"] for i in a["inspectors"]]}
        for a in detail.get("assignments", [])
    ]
    problems += _plan_diff(
        {"assignments": shown}, {"assignments": computed["assignments"]}, "the published plan"
    )
    tiers = {e.uscc: e.tier for e in entries}
    wrong_tier = [
        a["uscc"] for a in detail.get("assignments", []) if tiers.get(a["uscc"]) != a["tier"]
    ]
    if wrong_tier:
        problems.append(f"the published plan shows other tiers for {wrong_tier[:3]}")
    if problems:
        raise v.fail("plan", "; ".join(problems[:5]))
    checks = len(computed["assignments"])
    v.outcome = f"{checks} check(s), plan digest {selection.plan_digest(plan)}"
    v.add(
        "plan",
        "ok",
        f"re-running the selection gives the published plan: {checks} merchant(s) "
        f"{ {t: len(computed['selected'][t]) for t in selection.TIERS} }, "
        f"{body['per_check']} inspectors each",
    )


def _plan_diff(shown: dict[str, Any], computed: dict[str, Any], what: str) -> list[str]:
    problems = []
    for key in sorted(set(shown) | set(computed)):
        if key == "assignments":
            continue
        if shown.get(key) != computed.get(key):
            problems.append(
                f"{what} has {key} = {shown.get(key)!r}, recomputed {computed.get(key)!r}"
            )
    a_shown = shown.get("assignments", [])
    a_comp = computed.get("assignments", [])
    if len(a_shown) != len(a_comp):
        problems.append(f"{what} has {len(a_shown)} assignments, recomputed {len(a_comp)}")
    for n, (s, c) in enumerate(zip(a_shown, a_comp, strict=False), start=1):
        if s != c:
            problems.append(
                f"{what}, check {n}: {s.get('uscc')} by {s.get('inspectors')}, recomputed "
                f"{c.get('uscc')} by {c.get('inspectors')}"
            )
            break
    return problems


def verify_draw(
    ref: str,
    *,
    base_url: str,
    ledger_url: str | None = None,
    http: httpx.Client | None = None,
    w3: Web3 | None = None,
    trust_root: TrustRoot | None = None,
) -> DrawVerdict:
    """Verify draw ``ref`` (id or number) of the service at ``base_url`` against a pinned
    trust root; without one the verdict is never VERIFIED."""
    v = DrawVerdict(ref=ref, trust_root=trust_root)
    client = http or httpx.Client(timeout=120.0)
    try:
        api = _Api(client, base_url, v)
        detail = api.get("draw", f"/api/draws/{ref}")
        v.draw_id, v.number = detail.get("id"), detail.get("number")
        body = _check_commitment(v, detail)
        if trust_root is not None:
            _check_pinned(v, body, trust_root)
        snap = api.get("snapshot", f"/api/draws/{detail['id']}/snapshot")
        entries = _check_snapshot(v, snap, body)
        inspectors = _check_inspectors(v, detail, body)
        pairs = _check_recusals(
            v, api, api.get("recusals", f"/api/draws/{detail['id']}/recusals"), body
        )
        url = ledger_url or (detail.get("chain") or {}).get("ledger_url")
        v.ledger_url = url
        if w3 is None:
            if not url:
                raise v.fail(
                    "ledger",
                    f"the service names no JSON-RPC URL: pass --ledger with a URL of chain "
                    f"{body['chain']['chain_id']}",
                    incomplete=True,
                )
            w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        state = _check_chain(v, w3, url or "the given ledger", detail, body)
        if not state.revealed:
            if detail.get("status") in ("revealed", "failed"):
                raise v.fail("reveal", "the service shows an outcome, but the chain has no reveal")
            if detail.get("status") == "expired":
                raise v.fail(
                    "reveal",
                    "the draw expired: its seed was never revealed, so there is no plan to "
                    "check (the commitment checks above hold)",
                    incomplete=True,
                )
            raise v.fail(
                "reveal",
                f"not revealed yet (status {detail.get('status')}); the commitment checks above "
                "hold, run again after the reveal",
                incomplete=True,
            )
        randomness = _check_randomness(v, w3, url or "the given ledger", state, detail)
        _check_outcome(v, detail, body, randomness, entries, inspectors, pairs)
        if trust_root is None:
            raise v.fail("trust root", NO_TRUST_ROOT, incomplete=True)
    except _Stop:
        pass
    finally:
        if http is None:
            client.close()
    return v
