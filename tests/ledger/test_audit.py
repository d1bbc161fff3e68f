"""The tamper audit: records edited, deleted, swapped or inserted directly in the
database are each named by id and leaf index, and the command exits non-zero."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from backend import cli
from backend.context import AppContext
from backend.ledger import merkle, onchain
from backend.ledger.anchoring import Anchorer
from backend.ledger.audit import _Accumulator, run_audit
from backend.ledger.log import AppendedRecord
from tests.ledger.conftest import append_records, settings_env


@pytest.fixture
def anchored(ctx: AppContext) -> Iterator[tuple[AppContext, list[AppendedRecord]]]:
    """Eight records under two checkpoints (leaves 0-4 and 6-8, each checkpoint ending
    with its subject index record at leaves 5 and 9), two more not yet anchored."""
    recs = append_records(ctx, 5)
    Anchorer(ctx).run_once(force=True)
    recs += append_records(ctx, 3, start=5)
    Anchorer(ctx).run_once(force=True)
    recs += append_records(ctx, 2, start=8)
    yield ctx, recs


def sql(ctx: AppContext, statement: str, **params: object) -> None:
    with ctx.db.session() as s:
        s.execute(text(statement), params)
        s.commit()


def audit_cli(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``honest-metering audit`` with the context's settings (the context is closed first,
    so the command opens the database and the chain itself)."""
    ctx.close()
    for key, value in settings_env(ctx.settings).items():
        if key.startswith("HM_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["audit"])
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def report_for(ctx: AppContext):  # type: ignore[no-untyped-def]
    cps = onchain.all_checkpoints(ctx.ledger().contract())
    with ctx.db.read() as s:
        return run_audit(s, cps)


class TestAuditCommand:
    def test_clean_log_passes(
        self,
        anchored: tuple[AppContext, list[AppendedRecord]],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        ctx, _ = anchored
        code, out, err = audit_cli(ctx, monkeypatch, capsys)
        assert code == 0, out + err
        assert "audit passed: all 12 record(s) match the 2 on-chain checkpoint(s)" in out
        assert "2 record(s) are not anchored yet" in out
        assert "audit: 12 / 12 records (100%)" in err  # progress

    def test_sql_update_is_named(
        self,
        anchored: tuple[AppContext, list[AppendedRecord]],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        ctx, recs = anchored
        victim = recs[2]
        altered = victim.canonical.replace("未发现问题".encode(), "发现问题".encode())
        assert altered != victim.canonical
        sql(ctx, "UPDATE log_leaf SET canonical = :c WHERE leaf_index = :i", c=altered, i=2)
        code, out, _ = audit_cli(ctx, monkeypatch, capsys)
        assert code == 1
        findings = [line for line in out.splitlines() if line.startswith("FINDING")]
        assert any(
            "altered" in f and "leaf 2 " in f and victim.record_id in f for f in findings
        ), out
        assert any("root_mismatch" in f and "checkpoint 0" in f for f in findings), out
        assert any("root_mismatch" in f and "checkpoint 1" in f for f in findings), out
        assert "audit FAILED" in out

    def test_deleted_record_is_named(
        self,
        anchored: tuple[AppContext, list[AppendedRecord]],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        ctx, recs = anchored
        leaf = recs[6].leaf_index
        sql(ctx, "DELETE FROM log_leaf WHERE leaf_index = :i", i=leaf)
        code, out, _ = audit_cli(ctx, monkeypatch, capsys)
        assert code == 1
        assert any(
            line.startswith("FINDING missing") and f"leaf {leaf} " in line
            and recs[6].record_id in line
            for line in out.splitlines()
        ), out
        # The first checkpoint (5 records) is untouched; the second is not.
        assert "checkpoint 0 " not in out
        assert "checkpoint 1 " in out

    def test_swapped_records_are_named(
        self,
        anchored: tuple[AppContext, list[AppendedRecord]],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        ctx, recs = anchored
        sql(ctx, "UPDATE log_leaf SET leaf_index = -1 WHERE leaf_index = 1")
        sql(ctx, "UPDATE log_leaf SET leaf_index = 1 WHERE leaf_index = 3")
        sql(ctx, "UPDATE log_leaf SET leaf_index = 3 WHERE leaf_index = -1")
        code, out, _ = audit_cli(ctx, monkeypatch, capsys)
        assert code == 1
        lines = [line for line in out.splitlines() if line.startswith("FINDING reordered")]
        assert any(
            "leaf 1 " in line and recs[3].record_id in line and "appended at leaf 3" in line
            for line in lines
        ), out
        assert any(
            "leaf 3 " in line and recs[1].record_id in line and "appended at leaf 1" in line
            for line in lines
        ), out


class TestFindings:
    def test_inserted_record(self, anchored: tuple[AppContext, list[AppendedRecord]]) -> None:
        ctx, recs = anchored
        fake = recs[0].canonical.replace(b'"n":0', b'"n":99')
        rid = merkle.leaf_hash(fake).hex()
        sql(
            ctx,
            "INSERT INTO log_leaf (leaf_index, record_id, record_type, subject, canonical, "
            "appended_at) VALUES (12, :r, 'supervision.spot_check', NULL, :c, "
            "'2026-01-01 00:00:00.000000')",
            r=rid,
            c=fake,
        )
        report = report_for(ctx)
        assert [(f.kind, f.leaf_index, f.record_id) for f in report.findings] == [
            ("inserted", 12, rid)
        ]

    def test_record_replaced_with_a_new_id(
        self, anchored: tuple[AppContext, list[AppendedRecord]]
    ) -> None:
        """Content and id rewritten together: the stored leaf hash still names the original."""
        ctx, recs = anchored
        fake = recs[4].canonical.replace(b'"n":4', b'"n":44')
        rid = merkle.leaf_hash(fake).hex()
        sql(
            ctx,
            "UPDATE log_leaf SET canonical = :c, record_id = :r WHERE leaf_index = 4",
            c=fake,
            r=rid,
        )
        report = report_for(ctx)
        kinds = {(f.kind, f.leaf_index, f.record_id) for f in report.findings}
        assert ("inserted", 4, rid) in kinds
        assert ("missing", 4, recs[4].record_id) in kinds
        assert {f.kind for f in report.findings} >= {"root_mismatch"}

    def test_stored_hashes_rewritten_too_are_still_caught_by_the_chain(
        self, anchored: tuple[AppContext, list[AppendedRecord]]
    ) -> None:
        ctx, recs = anchored
        fake = recs[1].canonical.replace(b'"n":1', b'"n":11')
        rid = merkle.leaf_hash(fake)
        sql(
            ctx,
            "UPDATE log_leaf SET canonical = :c, record_id = :r WHERE leaf_index = 1",
            c=fake,
            r=rid.hex(),
        )
        sql(ctx, "UPDATE merkle_node SET hash = :h WHERE level = 0 AND idx = 1", h=rid)
        report = report_for(ctx)
        mismatches = [f for f in report.findings if f.kind == "root_mismatch"]
        assert len(mismatches) == 2
        assert "suspects" in mismatches[0].detail

    def test_checkpoint_table_must_mirror_the_chain(
        self, anchored: tuple[AppContext, list[AppendedRecord]]
    ) -> None:
        ctx, _ = anchored
        sql(ctx, "UPDATE checkpoint SET tree_size = 4 WHERE seq = 0")
        report = report_for(ctx)
        [f] = report.findings
        assert f.kind == "checkpoint_table" and "checkpoint 0" in f.detail

    def test_truncated_log(self, anchored: tuple[AppContext, list[AppendedRecord]]) -> None:
        ctx, _ = anchored
        sql(ctx, "DELETE FROM log_leaf WHERE leaf_index >= 6")
        sql(ctx, "DELETE FROM merkle_node WHERE (level = 0 AND idx >= 6)")
        sql(ctx, "UPDATE log_head SET size = 6")
        report = report_for(ctx)
        assert [f.kind for f in report.findings] == ["truncated"]
        assert "covers 10 records" in report.findings[0].detail


@pytest.mark.parametrize("n", [*range(0, 34), 64, 65, 100])
def test_accumulator_matches_the_reference_root(n: int) -> None:
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(n)]
    acc = _Accumulator()
    for leaf in leaves:
        acc.push(leaf)
    assert acc.root() == merkle.root_from_leaf_hashes(leaves)
