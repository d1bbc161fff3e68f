"""``honest-metering verify --credit USCC``: recompute a displayed tier independently.

From the service's public API only, it fetches

1. the rating the service displays (``GET /api/merchants/{uscc}/credit``);
2. every policy version with its proof bundle (``GET /api/credit/policies``);
3. the merchant's publicly shown records (``GET /api/merchants/{uscc}/records``) and
   each one's proof bundle (``GET /api/records/{id}/proof``);

checks every bundle against the ledger with :mod:`backend.verification.bundle` (the
record is in the log whose anchored tree head the contract holds), checks that
the policy versions form one ``supersedes`` chain and picks the one in force,
checks that it follows the rating specification this verifier implements (its
``spec_sha256``; a document recorded before that field names none and follows the
specification's first rules, ``docs/credit-rating.md`` §11),
recomputes the rating with the pure :func:`backend.credit.rating.rate`, and
compares score, tier and policy version with what the service displays.

4. the completeness proof (``GET /api/merchants/{uscc}/completeness``, checked by
   :mod:`backend.verification.completeness`): exactly which records name the
   merchant as of the latest checkpoint; each is fetched and verified, and every
   one the disclosure rule shows today must be among the shown records.

What it proves: the displayed rating follows, by the published rules, from
records that are provably in the anchored log, and no record the rating reads
was withheld or added up to the proof's checkpoint (it fails naming the count
proved against the count shown). Records past their publicity period (停止公示)
are withheld by law; by construction (``rating.disclosure``) they cannot change
the rating on the rating date; the rating is recomputed from every proven record.

This module must never import the service's database layer or its settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import httpx

from backend.credit import rating
from backend.credit.policy import (
    RATING_SPEC_PATH,
    RATING_SPEC_SHA256,
    SAME_RULES_SPEC_SHA256,
    CreditPolicy,
    select_policy,
)
from backend.ledger.trustroot import TrustRoot
from backend.verification.bundle import connect, verify_bundle
from backend.verification.completeness import verify_completeness

Status = Literal["ok", "FAIL"]


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str


@dataclass
class CreditVerdict:
    uscc: str
    steps: list[Step] = field(default_factory=list)
    incomplete: bool = False
    shown: dict[str, Any] | None = None
    computed: rating.Rating | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.status == "ok" for s in self.steps)

    def add(self, name: str, status: Status, detail: str) -> bool:
        self.steps.append(Step(name, status, detail))
        return status == "ok"

    def fail(self, name: str, detail: str, *, incomplete: bool = False) -> CreditVerdict:
        self.incomplete = self.incomplete or incomplete
        self.add(name, "FAIL", detail)
        return self

    def summary(self) -> str:
        if self.ok and self.shown is not None and self.computed is not None:
            c = self.computed
            return (
                f"VERIFIED: merchant {self.uscc} is shown as tier {c.tier} (score {c.score}) on "
                f"{c.as_of}, and that is exactly what policy version {c.policy_version} gives for "
                f"its {self._count('records')} disclosed record(s), each proven to be in the "
                "anchored log."
            )
        reason = next((s.detail for s in self.steps if s.status == "FAIL"), "nothing checked")
        if self.incomplete:
            return f"NOT VERIFIED (could not complete the check): {reason}"
        return f"NOT VERIFIED: {reason}"

    def _count(self, name: str) -> str:
        for s in self.steps:
            if s.name == name:
                return s.detail.split(" ", 1)[0]
        return "0"

    def render(self) -> str:
        width = max((len(s.name) for s in self.steps), default=0)
        lines = [f"  [{s.status}]{' ' * (6 - len(s.status))}{s.name:<{width}}  {s.detail}"
                 for s in self.steps]
        return "\n".join([*lines, "", self.summary()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "uscc": self.uscc,
            "verified": self.ok,
            "incomplete": self.incomplete,
            "steps": [s.__dict__ for s in self.steps],
            "summary": self.summary(),
        }


class _Fetch:
    def __init__(self, http: httpx.Client, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(self.base + path, params=params or None)


def _bundle(fetch: _Fetch, record_id: str) -> tuple[dict[str, Any] | None, str | None, bool]:
    """(bundle, problem, incomplete)."""
    try:
        resp = fetch.get(f"/api/records/{record_id}/proof")
    except httpx.HTTPError as exc:
        return None, f"cannot fetch the proof of record {record_id}: {exc}", True
    if resp.status_code == 409:
        return (
            None,
            f"record {record_id} is not anchored on the ledger yet; run the check again after "
            "the next checkpoint (usually within a minute)",
            True,
        )
    if resp.status_code != 200:
        return None, f"the service has no proof for record {record_id} (HTTP {resp.status_code})", (
            resp.status_code >= 500
        )
    return resp.json(), None, False


def _prove(
    fetch: _Fetch,
    record_ids: list[str],
    *,
    ledger_url: str | None,
    w3: Any,
    trust_root: TrustRoot | None,
) -> tuple[dict[str, dict[str, Any]], str | None, bool, Any]:
    """Fetch and verify each record's bundle; returns the envelopes by id."""

    envelopes: dict[str, dict[str, Any]] = {}
    for rid in record_ids:
        data, problem, incomplete = _bundle(fetch, rid)
        if data is None:
            return envelopes, problem, incomplete, w3
        if w3 is None:
            url = ledger_url or data.get("ledger_url")
            if not url:
                return envelopes, (
                    "the proof bundles name no ledger: pass --ledger with a JSON-RPC URL of the "
                    "chain"
                ), True, w3
            w3 = connect(url)
        verdict = verify_bundle(data, trust_root=trust_root, ledger_url=ledger_url, w3=w3)
        if not verdict.ok:
            return envelopes, f"record {rid}: {verdict.reason}", verdict.incomplete, w3
        if data["record_id"] != rid:
            return envelopes, f"asked for record {rid}, the service proved {data['record_id']}", (
                False
            ), w3
        env = json.loads(data["record"])
        env["record_id"] = rid
        envelopes[rid] = env
    return envelopes, None, False, w3


def _complete(
    v: CreditVerdict,
    fetch: _Fetch,
    listing: dict[str, Any],
    records: list[dict[str, Any]],
    policy: CreditPolicy,
    as_of: date,
    *,
    ledger_url: str | None,
    w3: Any,
    trust_root: TrustRoot | None,
) -> tuple[list[dict[str, Any]] | None, Any]:
    """Fetch and check the completeness proof, fetch and verify every record it names,
    and compare with what the service shows. Returns the records to rate (every proven
    rated record, and the shown ones newer than the proof's checkpoint), or ``None``
    after failing ``v``."""
    uscc = v.uscc
    resp = fetch.get(f"/api/merchants/{uscc}/completeness")
    if resp.status_code != 200:
        body = _json(resp) or {}
        v.fail(
            "completeness",
            f"the service has no completeness proof for {uscc} (HTTP {resp.status_code}: "
            f"{body.get('detail', resp.text[:200])})",
            incomplete=True,
        )
        return None, w3
    proof = verify_completeness(
        _json(resp), uscc, trust_root=trust_root, ledger_url=ledger_url, w3=w3
    )
    if not proof.ok:
        v.fail("completeness", f"{proof.problem}", incomplete=proof.incomplete)
        return None, w3
    assert proof.covers is not None
    have = {env["record_id"]: env for env in records}
    missing = [rid for rid in proof.record_ids if rid not in have]
    envs, problem, incomplete, w3 = _prove(
        fetch, missing, ledger_url=ledger_url, w3=w3, trust_root=trust_root
    )
    proven = {**have, **envs}
    shown_items = {item["record_id"]: item for item in listing["items"]}
    if problem:
        shown_proven = sum(1 for rid in proof.record_ids if rid in shown_items)
        v.fail(
            "completeness",
            f"INCOMPLETE: the completeness proof at checkpoint {proof.checkpoint} proves "
            f"{proof.count} record(s) about {uscc}; the service shows {shown_proven} of them "
            "in its list of the records the rating reads, and a record it does not show "
            f"cannot be fetched and verified: {problem}",
            incomplete=incomplete,
        )
        return None, w3
    for rid in proof.record_ids:
        if proven[rid].get("subject") != uscc:
            v.fail("completeness", f"record {rid} in the proof is not about {uscc}")
            return None, w3
    proved = [proven[rid] for rid in proof.record_ids]
    added = [
        rid for rid, item in shown_items.items()
        if item.get("leaf_index", proof.covers) < proof.covers and rid not in proof.record_ids
    ]
    newer = [have[rid] for rid, item in shown_items.items()
             if item.get("leaf_index", proof.covers) >= proof.covers and rid in have]
    rated = [e for e in proved if e.get("type") in rating.RATED_TYPES] + newer
    try:
        must_show = set(rating.disclosure(rated, policy, as_of).shown)
    except rating.RatingError as exc:
        v.fail("completeness", f"the proven records cannot be rated: {exc}")
        return None, w3
    due = [e["record_id"] for e in proved if e["record_id"] in must_show]
    withheld = [rid for rid in due if rid not in shown_items]
    shown_due = len(due) - len(withheld)
    if withheld or added:
        what = []
        if withheld:
            what.append(f"withholds {', '.join(withheld)}")
        if added:
            what.append(f"shows {', '.join(added)}, which the proof does not contain")
        v.fail(
            "completeness",
            f"INCOMPLETE: the completeness proof at checkpoint {proof.checkpoint} proves "
            f"{proof.count} record(s) about {uscc}, {len(due)} of them to be shown on {as_of}; "
            f"the service shows {shown_due + len(added)} of those: it {'; it '.join(what)}",
        )
        return None, w3
    v.add(
        "completeness",
        "ok",
        f"{proof.count} record(s) about {uscc} as of checkpoint {proof.checkpoint} (tree size "
        f"{proof.tree_size}), all fetched and verified; the {len(due)} to be shown on "
        f"{as_of} are all shown"
        if proof.count
        else f"no record names {uscc} as of checkpoint {proof.checkpoint} (absence proven)",
    )
    return rated, w3


def verify_credit(
    uscc: str,
    *,
    base_url: str,
    http: httpx.Client | None = None,
    ledger_url: str | None = None,
    w3: Any = None,
    trust_root: TrustRoot | None = None,
) -> CreditVerdict:
    """Check that the tier the service shows for ``uscc`` follows from proven records.
    Each record's bundle is checked against ``trust_root`` (chain, contract, log key);
    without one the verdict is never VERIFIED (``verify_bundle``)."""
    own = http is None
    client = http or httpx.Client(timeout=30.0)
    try:
        for attempt in range(2):
            v = CreditVerdict(uscc=uscc.strip().upper())
            try:
                return _verify(
                    v, _Fetch(client, base_url), ledger_url=ledger_url, w3=w3,
                    trust_root=trust_root,
                )
            except _RecordsChanged:
                if attempt == 1:
                    return v.fail(
                        "records",
                        "the merchant's records kept changing while being checked; try again",
                        incomplete=True,
                    )
            except httpx.HTTPError as exc:
                return v.fail(
                    "service", f"cannot reach the service at {base_url}: {exc}", incomplete=True
                )
        raise AssertionError("unreachable")
    finally:
        if own:
            client.close()


class _RecordsChanged(Exception):
    """A record about the merchant arrived during the check: start again."""


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _verify(
    v: CreditVerdict,
    fetch: _Fetch,
    *,
    ledger_url: str | None,
    w3: Any,
    trust_root: TrustRoot | None,
) -> CreditVerdict:
    uscc = v.uscc
    for _attempt in range(2):
        shown_resp = fetch.get(f"/api/merchants/{uscc}/credit")
        records_resp = fetch.get(f"/api/merchants/{uscc}/records")
        if shown_resp.status_code != 200 or records_resp.status_code != 200:
            bad = shown_resp if shown_resp.status_code != 200 else records_resp
            body = _json(bad) or {}
            return v.fail(
                "service",
                f"the service answered HTTP {bad.status_code} for merchant {uscc}: "
                f"{body.get('detail', bad.text[:200])}",
                incomplete=bad.status_code >= 500 or bad.status_code == 404,
            )
        shown, listing = shown_resp.json(), records_resp.json()
        if shown["as_of"] == listing["as_of"]:
            break  # else midnight passed between the two requests: ask again
    else:
        return v.fail(
            "service", "the service's date changed while reading; try again", incomplete=True
        )
    v.shown = shown
    as_of = date.fromisoformat(shown["as_of"])
    v.add(
        "shown",
        "ok",
        f"the service shows tier {shown['tier']}, score {shown['score']}, policy version "
        f"{shown['policy_version']} on {as_of}",
    )

    # The policy: every version proven, one supersedes chain, the one in force chosen here.
    policies_resp = fetch.get("/api/credit/policies")
    if policies_resp.status_code != 200:
        return v.fail(
            "policy",
            f"cannot list the policy versions (HTTP {policies_resp.status_code})",
            incomplete=True,
        )
    policy_ids = [p["record_id"] for p in policies_resp.json()["items"]]
    envs, problem, incomplete, w3 = _prove(
        fetch, policy_ids, ledger_url=ledger_url, w3=w3, trust_root=trust_root
    )
    if problem:
        return v.fail("policy", problem, incomplete=incomplete)
    policies: list[CreditPolicy] = []
    previous: str | None = None
    for rid in policy_ids:
        env = envs[rid]
        if env.get("type") != "credit.policy" or env.get("subject") is not None:
            return v.fail("policy", f"record {rid} is not a credit.policy record")
        try:
            policy = CreditPolicy.model_validate(env["body"])
        except ValueError as exc:
            return v.fail("policy", f"policy record {rid} is not a valid policy document: {exc}")
        sup = [r["record"] for r in env.get("refs", []) if r.get("rel") == "supersedes"]
        if policy.version != len(policies) + 1 or sup != ([previous] if previous else []):
            return v.fail(
                "policy",
                f"policy record {rid} (version {policy.version}) does not continue the chain of "
                "versions 1, 2, … each superseding the one before",
            )
        policies.append(policy)
        previous = rid
    try:
        policy = select_policy(policies, as_of)
    except LookupError:
        return v.fail("policy", f"no proven policy version is in force on {as_of}")
    if policy.spec_sha256 is not None and policy.spec_sha256 not in SAME_RULES_SPEC_SHA256:
        return v.fail(
            "policy",
            f"policy version {policy.version} follows the rating specification with SHA-256 "
            f"{policy.spec_sha256}, and this verifier implements {RATING_SPEC_PATH} with "
            f"SHA-256 {RATING_SPEC_SHA256}: it cannot recompute a rating by other rules",
        )
    v.add(
        "policy",
        "ok",
        f"{len(policies)} policy version(s) proven; version {policy.version} (effective "
        f"{policy.effective_from}) is in force on {as_of} and follows "
        + (
            f"the rating specification {policy.spec_sha256[:16]}… this verifier implements"
            if policy.spec_sha256 is not None
            else "the rating specification's first rules (it names no specification)"
        ),
    )
    if policy.version != shown["policy_version"] or shown.get("policy_record_id") != policy_ids[
        policy.version - 1
    ]:
        return v.fail(
            "policy",
            f"the service rates with policy version {shown['policy_version']}, but version "
            f"{policy.version} is the one in force on {as_of}",
        )

    # The records.
    ids = [item["record_id"] for item in listing["items"]]
    envs, problem, incomplete, w3 = _prove(
        fetch, ids, ledger_url=ledger_url, w3=w3, trust_root=trust_root
    )
    if problem:
        return v.fail("records", problem, incomplete=incomplete)
    records = [envs[i] for i in ids]
    for env in records:
        if env.get("subject") != uscc or env.get("type") not in rating.RATED_TYPES:
            return v.fail(
                "records",
                f"record {env['record_id']} is a {env.get('type')} about {env.get('subject')}, "
                f"not a record about {uscc} that the rating reads",
            )
    withheld = listing.get("withheld", 0)
    v.add(
        "records",
        "ok",
        f"{len(records)} disclosed record(s) proven to be in the anchored log"
        + (f"; {withheld} past their publicity period are not shown (停止公示)"
           if withheld else ""),
    )

    # Completeness: every record about the merchant as of a checkpoint, proven.
    rated, w3 = _complete(
        v, fetch, listing, records, policy, as_of,
        ledger_url=ledger_url, w3=w3, trust_root=trust_root,
    )
    if rated is None:
        return v

    try:
        computed = rating.rate(rated, policy, as_of)
    except rating.RatingError as exc:
        return v.fail("rating", f"the disclosed records cannot be rated: {exc}")
    v.computed = computed
    diffs = []
    if computed.tier != shown["tier"]:
        diffs.append(f"tier {shown['tier']} (the records give {computed.tier})")
    if computed.score != shown["score"]:
        diffs.append(f"score {shown['score']} (the records give {computed.score})")
    if diffs:
        latest = fetch.get(f"/api/merchants/{uscc}/records")
        if latest.status_code == 200 and [x["record_id"] for x in latest.json()["items"]] != ids:
            raise _RecordsChanged
        why = "; ".join(f"{f.points:+d} {f.reason_zh}" for f in computed.factors) or "no factors"
        return v.fail(
            "rating",
            f"MISMATCH: the service shows {', '.join(diffs)}. Recomputed from the disclosed "
            f"records: base {policy.base_score}, {why}",
        )
    shown_factors = sorted((f["record_id"], f["points"]) for f in shown.get("factors", []))
    computed_factors = sorted((f.record_id, f.points) for f in computed.factors)
    if shown_factors != computed_factors:
        return v.fail(
            "rating",
            "the score and tier match, but the reasons the service lists differ from the "
            "recomputed factors",
        )
    v.add(
        "rating",
        "ok",
        f"recomputed score {computed.score} → tier {computed.tier} from "
        f"{len(computed.factors)} factor(s), as shown",
    )
    return v
