"""Completeness proofs (issue 17): each checkpoint ends with a ``ledger.subject_index``
record over every leaf before it; ``GET /api/merchants/{uscc}/completeness`` proves a
code's records (membership) or that it has none (absence) against it; the index table
is audited against the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend import cli
from backend.app import create_app
from backend.config import Settings
from backend.context import AppContext
from backend.db import INT_KEY_MAX
from backend.ledger import index_store, log, merkle
from backend.ledger import subject_index as si
from backend.ledger.anchoring import Anchorer
from backend.ledger.bundle import parse_bundle, unhex
from backend.ledger.records import Actor, RecordDraft
from backend.uscc import compute_check_chars
from tests.ledger.conftest import SUBJECT, append_records
from tests.ledger.test_audit import audit_cli

OTHER = "91511902MA62Q3T564"
NOBODY = "91110000" + "1" * 8
NOBODY += compute_check_chars(NOBODY)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"anchor_enabled": False}))
    with TestClient(app) as c:
        yield c


def ctx_of(client: TestClient) -> AppContext:
    return client.app.state.ctx  # type: ignore[attr-defined,no-any-return]


def anchor(ctx: AppContext) -> None:
    assert Anchorer(ctx).run_once(force=True).action == "anchored"


def _with_subject(ctx: AppContext, subject: str, n: int) -> list[str]:
    drafts = [
        RecordDraft(type="test.entry", subject=subject, actor=Actor("regulator", "1"),
                    body={"n": i})
        for i in range(n)
    ]
    with ctx.db.session() as s:
        out = log.append(s, drafts)
        s.commit()
    return [r.record_id for r in out]


def check(body: dict[str, Any], subject: str) -> tuple[bytes, si.IndexProof]:
    """The checks a verifier makes offline: the index record is the checkpoint's last
    leaf, in the log under the checkpoint's root; the proof leads to its root."""
    b = parse_bundle(body["index_record"])
    assert b.leaf_index == b.checkpoint.tree_size - 1 == body["covers"]
    merkle.verify_inclusion(
        b.leaf_index, b.checkpoint.tree_size, unhex(b.leaf_hash),
        [unhex(p) for p in b.inclusion_proof], unhex(b.checkpoint.root),
    )
    record = json.loads(b.record)
    assert record["type"] == index_store.INDEX_TYPE and record["body"]["covers"] == b.leaf_index
    assert body["key"] == si.subject_key(subject).hex()
    return bytes.fromhex(record["body"]["root"]), si.IndexProof.from_json(body["proof"])


def test_membership_then_absence_and_history(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ctx_of(client)
    recs = append_records(ctx, 3)
    mine = [r.record_id for r in recs]
    _with_subject(ctx, OTHER, 2)
    anchor(ctx)
    first = client.get(f"/api/merchants/{SUBJECT}/completeness")
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["proves"], body["count"], body["record_ids"]) == ("membership", 3, mine)
    assert body["leaf_indexes"] == [r.leaf_index for r in recs]
    assert body["tree_size"] == body["covers"] + 1 == recs[-1].leaf_index + 2 + 2
    root, proof = check(body, SUBJECT)
    count, digest = si.ids_digest(mine)
    si.verify_membership(root, si.subject_key(SUBJECT), count, digest, proof)
    # One record left out of the list no longer matches the proof's leaf.
    with pytest.raises(si.SubjectIndexError):
        si.verify_membership(root, si.subject_key(SUBJECT), *si.ids_digest(mine[:2]), proof)

    none = client.get(f"/api/merchants/{NOBODY}/completeness")
    assert none.status_code == 200, none.text
    nb = none.json()
    assert (nb["proves"], nb["count"], nb["record_ids"], nb["ids_digest"]) == (
        "absence", 0, [], None
    )
    root, proof = check(nb, NOBODY)
    si.verify_absence(root, si.subject_key(NOBODY), proof)
    with pytest.raises(si.SubjectIndexError):  # nor can SUBJECT's proof pass for absence
        si.verify_absence(root, si.subject_key(SUBJECT), check(body, SUBJECT)[1])

    # Two more records: the next checkpoint proves 5, checkpoint 0 still proves 3.
    mine += [r.record_id for r in append_records(ctx, 2, start=5)]
    anchor(ctx)
    builds: list[int] = []
    build = index_store.build
    def counted(session: Any, covers: int) -> si.SubjectIndex:
        builds.append(covers)
        return build(session, covers)

    monkeypatch.setattr(index_store, "build", counted)
    latest = client.get(f"/api/merchants/{SUBJECT}/completeness").json()
    assert builds == []  # checkpoint 0's tree, carried over to checkpoint 1
    assert (latest["checkpoint"], latest["count"], latest["record_ids"]) == (1, 5, mine)
    old = client.get(f"/api/merchants/{SUBJECT}/completeness", params={"checkpoint": 0}).json()
    assert (old["checkpoint"], old["count"]) == (0, 3)
    root, proof = check(old, SUBJECT)
    si.verify_membership(root, si.subject_key(SUBJECT), *si.ids_digest(mine[:3]), proof)


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        (f"/api/merchants/{SUBJECT[:-1]}X/completeness", {}, 422, "InvalidSubjectCode"),
        ("/api/merchants/%E4%B8%AD/completeness", {}, 422, "InvalidSubjectCode"),
        (f"/api/merchants/{SUBJECT}/completeness", {"checkpoint": INT_KEY_MAX + 1}, 422, None),
        (f"/api/merchants/{SUBJECT}/completeness", {"checkpoint": -1}, 422, None),
        (f"/api/merchants/{SUBJECT}/completeness", {"checkpoint": "x"}, 422, None),
        (f"/api/merchants/{SUBJECT}/completeness", {"checkpoint": 7}, 404, "CheckpointNotFound"),
    ],
)
def test_bad_input_answers_in_the_error_shape(
    client: TestClient, path: str, params: dict[str, Any], status: int, error: str | None
) -> None:
    ctx = ctx_of(client)
    append_records(ctx, 1)
    anchor(ctx)
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail_zh"], body
    if error is not None:
        assert body["error"] == error


def test_before_any_checkpoint(client: TestClient) -> None:
    r = client.get(f"/api/merchants/{SUBJECT}/completeness")
    assert r.status_code == 404 and r.json()["error"] == "CheckpointNotFound"


def test_a_forged_index_is_caught_by_audit(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    append_records(ctx, 3)
    _with_subject(ctx, OTHER, 2)
    anchor(ctx)
    code, out, err = audit_cli(ctx, monkeypatch, capsys)
    assert code == 0, out + err

    # One merchant's count changed: its last row dropped (3 -> 2 records).
    with ctx.db.session() as s:
        s.execute(text("DELETE FROM subject_index_entry WHERE subject = :s AND seq = 3"),
                  {"s": SUBJECT})
        s.commit()
    code, out, err = audit_cli(ctx, monkeypatch, capsys)
    assert code != 0, out + err
    assert "subject_index_entry" in out and SUBJECT in out

    # The rows are the log's to say: rebuild --from-log restores them.
    with pytest.raises(SystemExit) as exit_:
        cli.main(["rebuild", "--from-log", "--quiet"])
    assert exit_.value.code == 0, capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["audit", "--quiet"])
    assert exit_.value.code == 0, capsys.readouterr()


def test_the_anchorer_reuses_a_trailing_index_record(ctx: AppContext) -> None:
    """A pass that appended its index record and crashed before anchoring: the next
    pass anchors that record instead of appending another."""
    append_records(ctx, 2)
    with ctx.db.session() as s:
        from datetime import UTC, datetime

        rec, _ = index_store.append_index_record(s, now=datetime.now(UTC), kept=None)
        s.commit()
    out = Anchorer(ctx).run_once(force=True)
    assert out.tree_size == rec.leaf_index + 1 == 3


def test_a_checkpoint_from_before_the_index(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint anchored by a version without the index (its last leaf is an
    ordinary record): 409 NoSubjectIndex in the error shape; the next one has it."""
    ctx = ctx_of(client)
    append_records(ctx, 2)
    with monkeypatch.context() as m:
        m.setattr(Anchorer, "_close_with_index", lambda self, size: size)
        anchor(ctx)
    r = client.get(f"/api/merchants/{SUBJECT}/completeness")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "NoSubjectIndex" and r.json()["detail_zh"]
    append_records(ctx, 1, start=2)
    anchor(ctx)
    body = client.get(f"/api/merchants/{SUBJECT}/completeness").json()
    assert (body["checkpoint"], body["count"]) == (1, 3)
    old = client.get(f"/api/merchants/{SUBJECT}/completeness", params={"checkpoint": 0})
    assert old.status_code == 409 and old.json()["error"] == "NoSubjectIndex"
