"""POST /api/supervision/records/bulk: CSV and JSON lines, all or nothing."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.credit.models import MerchantRating
from backend.ledger import log
from backend.supervision.kinds import CSV_COLUMNS
from backend.supervision.models import SupervisionRecord
from tests import factories
from tests.supervision import outcomes as o

BULK = "/api/supervision/records/bulk"
CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def to_csv(rows: list[dict[str, Any]], *, columns: list[str] | None = None) -> str:
    cols = columns or [c for c in CSV_COLUMNS if any(c in r for r in rows)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("true" if v is True else "false" if v is False else v)
                    for k, v in r.items()})
    return buf.getvalue()


def to_ndjson(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def counts(client: TestClient) -> tuple[int, int]:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(func.count()).select_from(SupervisionRecord)).scalar_one()
        return log.tree_size(s), int(rows)


@pytest.fixture
def merchants(client: TestClient) -> list[str]:
    return [str(factories.register_verified(client)["uscc"]) for _ in range(20)]


class TestBulk:
    def test_ten_thousand_csv_rows(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        rows = []
        for i in range(10_000):
            u = merchants[i % len(merchants)]
            if i % 3 == 0:
                rows.append(o.instrument(uscc=u, serial=f"S-{i}"))
            else:
                rows.append(o.spot_check(uscc=u, checked_on=o.days_ago(1 + i % 300)))
        resp = client.post(BULK, content=to_csv(rows).encode(), headers={**regulator, **CSV})
        assert resp.status_code == 201, resp.text[:2000]
        out = resp.json()
        assert out["count"] == 10_000 and out["merchants"] == 20
        assert [r["row"] for r in out["records"]] == list(range(1, 10_001))
        # 500 spot checks cap at +6; 167 instruments overdue cap at -20.
        credit = o.credit(client, merchants[0])
        assert credit["score"] == 66 and credit["source"] == "current"
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            assert s.execute(select(func.count()).select_from(MerchantRating)).scalar_one() == 20

    def test_one_bad_row_writes_nothing(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        rows = [o.spot_check(uscc=merchants[i % 20]) for i in range(2000)]
        rows[1233]["checked_on"] = "2026-13-01"
        before = counts(client)
        resp = client.post(BULK, content=to_csv(rows).encode(), headers={**regulator, **CSV})
        assert resp.status_code == 422
        body = resp.json()
        assert body["error"] == "BulkValidationFailed"
        assert "nothing was written" in body["detail"]
        assert body["error_count"] == 1
        assert [(e["row"], e["field"], e["column"]) for e in body["errors"]] == [
            (1234, "checked_on", "checked_on")
        ]
        assert body["errors"][0]["problem_zh"].startswith("检查日期：")
        assert body["row_count"] == 2000 and body["invalid_rows"] == 1
        assert counts(client) == before

    def test_errors_name_row_field_problem_and_are_capped(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        rows = [o.spot_check(uscc=merchants[0], result="合格") for _ in range(1500)]
        rows.append(o.penalty(uscc=factories.make_uscc(n=999_998)))
        resp = client.post(BULK, content=to_ndjson(rows).encode(), headers={**regulator, **NDJSON})
        body = resp.json()
        assert resp.status_code == 422
        assert body["error_count"] == 1501 and body["errors_truncated"] is True
        assert len(body["errors"]) == 1000
        assert body["errors"][0]["row"] == 1 and body["errors"][0]["field"] == "result"
        resp = client.post(BULK, content=to_ndjson(rows[-1:]).encode(),
                           headers={**regulator, **NDJSON})
        assert [(e["row"], e["field"]) for e in resp.json()["errors"]] == [(1, "uscc")]
        assert "register it first" in resp.json()["errors"][0]["problem"]

    def test_rows_are_checked_against_earlier_rows(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        u = merchants[0]
        rows = [
            o.listing(uscc=u, on=o.days_ago(9)),
            o.listing(uscc=u, on=o.days_ago(8)),  # already listed by row 1
            o.penalty(uscc=u, decision_no="A-1"),
            o.penalty(uscc=u, decision_no="A-1"),  # same decision twice
        ]
        resp = client.post(BULK, content=to_ndjson(rows).encode(), headers={**regulator, **NDJSON})
        assert resp.status_code == 422
        assert [(e["row"], e["field"]) for e in resp.json()["errors"]] == [
            (2, "action"), (4, "decision_no")
        ]

    def test_a_row_may_end_a_listing_made_above_it(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        u = merchants[0]
        rows = [
            o.spot_check(uscc=u),
            o.listing(uscc=u, on=o.days_ago(9)),
            o.spot_check(uscc=merchants[1]),
            o.listing(uscc=u, action="out", on=o.days_ago(2)),
        ]
        resp = client.post(BULK, content=to_ndjson(rows).encode(), headers={**regulator, **NDJSON})
        assert resp.status_code == 201, resp.text
        recs = resp.json()["records"]
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            out = log.get_envelope(s, recs[3]["record_id"])
            assert [r["leaf_index"] for r in recs] == sorted(r["leaf_index"] for r in recs)
        assert out["refs"] == [{"rel": "closes", "record": recs[1]["record_id"]}]
        assert o.credit(client, u)["on_abnormal_list"] is False

    def test_mixed_kinds_in_csv_with_booleans_and_gb18030(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        rows = [
            o.penalty(uscc=merchants[0], performed=True, special_sector=True),
            o.complaint_verified(uscc=merchants[1]),
            o.instrument(uscc=merchants[2]),
        ]
        text = to_csv(rows).replace("true", "是")
        resp = client.post(BULK, content=text.encode("gb18030"),
                           headers={**regulator, "Content-Type": "text/csv; charset=gb18030"})
        assert resp.status_code == 201, resp.text
        pid = resp.json()["records"][0]["record_id"]
        got = client.get(f"/api/supervision/records/{pid}", headers=regulator).json()
        assert got["body"]["performed"] is True and got["body"]["special_sector"] is True
        assert got["body"]["authority"] == o.AUTHORITY

    def test_file_format_problems(
        self, client: TestClient, regulator: dict[str, str], merchants: list[str]
    ) -> None:
        resp = client.post(BULK, content=b"{}", headers={**regulator,
                                                          "Content-Type": "application/json"})
        assert resp.status_code == 415 and resp.json()["error"] == "UnsupportedBulkFormat"
        resp = client.post(BULK, content=b"kind,uscc,colour\nspot_check,x,red\n",
                           headers={**regulator, **CSV})
        errors = resp.json()["errors"]
        assert resp.status_code == 422 and errors[0]["row"] == 0 and errors[0]["field"] == "colour"
        resp = client.post(BULK, content=b"not json\n[1]\n", headers={**regulator, **NDJSON})
        assert [e["row"] for e in resp.json()["errors"]] == [1, 2]
        resp = client.post(BULK, content=b"", headers={**regulator, **NDJSON})
        assert resp.status_code == 422 and "no rows" in resp.json()["errors"][0]["problem"]
        resp = client.post(
            BULK,
            content=to_ndjson([{"kind": "demonstration", "uscc": merchants[0], "action": "award"}])
            .encode(),
            headers={**regulator, **NDJSON},
        )
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "kind"
