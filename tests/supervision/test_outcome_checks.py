"""Two checks of an outcome's inputs: every date lies on or after the earliest
outcome date (2000-01-01), and a spot check's ``draw_id`` names a revealed draw
that selected the merchant. Through the HTTP API (single outcomes and bulk files)
and through the group commit (:func:`backend.supervision.service.record_outcomes`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import event, func, select

from backend.accounts.models import Account
from backend.accounts.service import Principal
from backend.errors import DomainError
from backend.ledger import log
from backend.supervision import service
from backend.supervision.models import SupervisionInput, SupervisionRecord
from tests import factories
from tests.inspections.helpers import add_inspectors, add_item, create_draw, reveal, seed_merchants
from tests.supervision import outcomes as o
from tests.supervision.test_bulk import BULK, NDJSON, to_csv, to_ndjson

RECORDS = "/api/supervision/records"
CSV = {"Content-Type": "text/csv"}
EARLIEST = date(2000, 1, 1)
INPUT: TypeAdapter[Any] = TypeAdapter(SupervisionInput)


def counts(client: TestClient) -> tuple[int, int]:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(func.count()).select_from(SupervisionRecord)).scalar_one()
        return log.tree_size(s), int(rows)


def refused(
    client: TestClient, body: dict[str, Any], headers: dict[str, str], *, status: int, error: str
) -> dict[str, Any]:
    """POST an outcome that must be refused with ``status`` and ``error``, writing nothing."""
    before = counts(client)
    resp = client.post(RECORDS, json=body, headers=headers)
    assert resp.status_code == status, resp.text
    out: dict[str, Any] = resp.json()
    assert out["error"] == error, out
    assert counts(client) == before
    return out


@pytest.fixture
def uscc(client: TestClient) -> str:
    return str(factories.register(client)["uscc"])


# --- dates ------------------------------------------------------------------------------------

FAR_PAST = date(1, 1, 1)
JUST_BEFORE = EARLIEST - timedelta(days=1)

EARLY: list[tuple[str, Callable[[str], dict[str, Any]], str, date]] = [
    ("spot_check", lambda u: o.spot_check(uscc=u, checked_on=FAR_PAST), "checked_on", FAR_PAST),
    ("spot_check_day_before", lambda u: o.spot_check(uscc=u, checked_on=JUST_BEFORE),
     "checked_on", JUST_BEFORE),
    ("penalty", lambda u: o.penalty(uscc=u, decided_on=FAR_PAST), "decided_on", FAR_PAST),
    ("complaint", lambda u: o.complaint_verified(uscc=u, verified_on=FAR_PAST), "verified_on",
     FAR_PAST),
    ("abnormal_list", lambda u: o.listing(uscc=u, on=FAR_PAST), "on", FAR_PAST),
    ("serious_list", lambda u: o.listing(kind="serious_list", uscc=u, on=JUST_BEFORE), "on",
     JUST_BEFORE),
    ("instrument_verified", lambda u: o.instrument(uscc=u, verified_on=FAR_PAST), "verified_on",
     FAR_PAST),
    ("instrument_valid_until", lambda u: o.instrument(uscc=u, valid_until=FAR_PAST),
     "valid_until", FAR_PAST),
    ("demonstration", lambda u: {"kind": "demonstration", "uscc": u, "action": "award",
                                 "on": JUST_BEFORE.isoformat()}, "on", JUST_BEFORE),
]


class TestDates:
    @pytest.mark.parametrize(("make", "field", "value"), [e[1:] for e in EARLY],
                             ids=[e[0] for e in EARLY])
    def test_too_early_refused(
        self,
        client: TestClient,
        regulator: dict[str, str],
        uscc: str,
        make: Callable[[str], dict[str, Any]],
        field: str,
        value: date,
    ) -> None:
        out = refused(client, make(uscc), regulator, status=422, error="DateTooEarly")
        assert out["field"] == field
        assert f"{field} {value.isoformat()}" in out["detail"]
        assert EARLIEST.isoformat() in out["detail"]

    def test_the_earliest_day_is_accepted(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        spot = o.post(client, o.spot_check(uscc=uscc, checked_on=EARLIEST), headers=regulator)
        assert spot["body"]["checked_on"] == "2000-01-01"
        assert spot["effective_on"] == "2000-01-01"
        inst = o.post(client, o.instrument(uscc=uscc, verified_on=EARLIEST, valid_until=EARLIEST),
                      headers=regulator)
        assert inst["body"]["valid_until"] == "2000-01-01"

    def test_future_dates_still_refused(
        self, client: TestClient, regulator: dict[str, str], uscc: str
    ) -> None:
        tomorrow = date.today() + timedelta(days=2)  # past "today" in Asia/Shanghai too
        out = refused(client, o.spot_check(uscc=uscc, checked_on=tomorrow), regulator,
                      status=422, error="DateInFuture")
        assert out["field"] == "checked_on"

    @pytest.mark.parametrize("fmt", ["csv", "ndjson"])
    def test_bulk_with_one_early_row_writes_nothing(
        self, client: TestClient, regulator: dict[str, str], uscc: str, fmt: str
    ) -> None:
        rows = [o.spot_check(uscc=uscc, checked_on=o.days_ago(1 + i)) for i in range(30)]
        rows[17] = o.penalty(uscc=uscc, decided_on=FAR_PAST)
        content, headers = (
            (to_csv(rows), CSV) if fmt == "csv" else (to_ndjson(rows), NDJSON)
        )
        before = counts(client)
        resp = client.post(BULK, content=content.encode(), headers={**regulator, **headers})
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["error"] == "BulkValidationFailed" and "nothing was written" in body["detail"]
        assert body["error_count"] == 1
        (err,) = body["errors"]
        assert (err["row"], err["field"]) == (18, "decided_on")
        assert "0001-01-01" in err["problem"] and "2000-01-01" in err["problem"]
        assert counts(client) == before
        # The same file without the bad row is written whole.
        del rows[17]
        good = to_csv(rows) if fmt == "csv" else to_ndjson(rows)
        resp = client.post(BULK, content=good.encode(), headers={**regulator, **headers})
        assert resp.status_code == 201, resp.text[:2000]
        assert resp.json()["count"] == 29


# --- draw ids ---------------------------------------------------------------------------------


@pytest.fixture
def drawn(client: TestClient, regulator: dict[str, str]) -> dict[str, Any]:
    """Eight verified merchants, a committed draw and a revealed one (whose plan
    selects some merchants and spares others)."""
    usccs = seed_merchants(client, tiers=["A", "A", "B", "B", "B", "C", "D", "D"])
    add_inspectors(client, regulator, count=4)
    item = add_item(client, regulator)
    committed = create_draw(client, regulator, item_id=item)
    revealed = reveal(client, regulator, create_draw(client, regulator, item_id=item)["id"])
    planned = [a["uscc"] for a in revealed["assignments"]]
    spared = [u for u in usccs if u not in planned]
    assert len(planned) >= 3 and spared
    return {"committed": committed["id"], "revealed": revealed["id"], "planned": planned,
            "spared": spared}


@pytest.fixture
def staff(client: TestClient, regulator: dict[str, str]) -> Principal:
    with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
        acc = s.execute(select(Account).where(Account.username == "regulator1")).scalar_one()
        return Principal(acc.id, acc.username, "regulator", None)  # type: ignore[arg-type]


@contextmanager
def draw_queries(client: TestClient) -> Iterator[list[str]]:
    """The statements that read the draw tables while the block runs."""
    engine = client.app.state.ctx.db.engine  # type: ignore[attr-defined]
    seen: list[str] = []
    pattern = re.compile(r"\bFROM draw(_assignment)?\b", re.IGNORECASE)

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if pattern.search(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


class TestDrawId:
    def test_a_planned_check_is_accepted(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        did, uscc = drawn["revealed"], drawn["planned"][0]
        # Written as people copy it: with 0x and in capitals; recorded as the draw's id.
        out = o.post(client, o.spot_check(uscc=uscc, draw_id="0x" + did.upper()),
                     headers=regulator)
        assert out["body"]["draw_id"] == did
        with client.app.state.ctx.db.read() as s:  # type: ignore[attr-defined]
            row = s.get(SupervisionRecord, out["record_id"])
            assert row is not None and row.draw_id == did
        shown = {a["uscc"]: a for a in client.get(f"/api/draws/{did}").json()["assignments"]}
        assert shown[uscc]["result_status"] == "recorded"

    def test_unknown_draw_refused(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        uscc, nowhere = drawn["planned"][0], "ab" * 32
        out = refused(client, o.spot_check(uscc=uscc, draw_id=nowhere), regulator,
                      status=404, error="UnknownDraw")
        assert out["field"] == "draw_id"
        assert nowhere in out["detail"] and uscc in out["detail"]

    def test_unrevealed_draw_refused(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        uscc, did = drawn["planned"][0], drawn["committed"]
        out = refused(client, o.spot_check(uscc=uscc, draw_id=did), regulator,
                      status=409, error="DrawNotRevealed")
        assert out["field"] == "draw_id"
        assert did in out["detail"] and uscc in out["detail"] and "committed" in out["detail"]

    def test_merchant_not_selected_refused(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        uscc, did = drawn["spared"][0], drawn["revealed"]
        out = refused(client, o.spot_check(uscc=uscc, draw_id=did), regulator,
                      status=422, error="MerchantNotSelected")
        assert out["field"] == "draw_id"
        assert did in out["detail"] and uscc in out["detail"]
        # Without the draw, the same check is an ordinary spot check.
        o.post(client, o.spot_check(uscc=uscc), headers=regulator)

    def test_malformed_draw_id_refused(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        out = refused(client, o.spot_check(uscc=drawn["planned"][0], draw_id="D-1"), regulator,
                      status=422, error="ValidationFailed")
        assert "draw_id" in out["detail"] and "64 hex digits" in out["detail"]
        assert "number" in out["detail"]

    def test_a_correction_is_checked_too(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        uscc = drawn["planned"][0]
        first = o.post(client, o.spot_check(uscc=uscc, draw_id=drawn["revealed"]),
                       headers=regulator)
        fix = {"supersedes": first["record_id"], "correction_reason": "抽查编号录错"}
        refused(client, o.spot_check(uscc=uscc, draw_id=drawn["committed"], **fix), regulator,
                status=409, error="DrawNotRevealed")

    def test_group_commit_refuses_each_bad_draw_alone(
        self, client: TestClient, staff: Principal, drawn: dict[str, Any]
    ) -> None:
        did, planned, spared = drawn["revealed"], drawn["planned"], drawn["spared"]
        before = counts(client)
        bodies = [
            o.spot_check(uscc=planned[0], draw_id=did),
            o.spot_check(uscc=planned[1], draw_id="cd" * 32),
            o.spot_check(uscc=spared[0], draw_id=did),
            o.spot_check(uscc=planned[2], draw_id=drawn["committed"]),
            o.spot_check(uscc=planned[1], draw_id=did),
        ]
        db = client.app.state.ctx.db  # type: ignore[attr-defined]
        with draw_queries(client) as seen, db.session() as s:
            out = service.record_outcomes(s, [(staff, INPUT.validate_python(b)) for b in bodies])
        assert [type(r).__name__ for r in out] == [
            "SupervisionRecordWritten", "UnknownDraw", "MerchantNotSelected", "DrawNotRevealed",
            "SupervisionRecordWritten",
        ]
        assert all(isinstance(r, DomainError) for r in out[1:4])
        assert counts(client) == (before[0] + 2, before[1] + 2)
        # One look-up of the draws and one of their plans for the whole batch.
        assert len(seen) == 2, seen

    def test_bulk_with_one_unselected_row_writes_nothing(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        did = drawn["revealed"]
        rows = [o.spot_check(uscc=u, draw_id=did) for u in drawn["planned"]]
        rows.insert(1, o.spot_check(uscc=drawn["spared"][0], draw_id=did))
        before = counts(client)
        resp = client.post(BULK, content=to_ndjson(rows).encode(), headers={**regulator, **NDJSON})
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["error"] == "BulkValidationFailed" and body["error_count"] == 1
        (err,) = body["errors"]
        assert (err["row"], err["field"]) == (2, "draw_id")
        assert drawn["spared"][0] in err["problem"] and did in err["problem"]
        assert counts(client) == before
        del rows[1]
        with draw_queries(client) as seen:
            resp = client.post(BULK, content=to_csv(rows).encode(), headers={**regulator, **CSV})
        assert resp.status_code == 201, resp.text
        assert resp.json()["count"] == len(drawn["planned"])
        assert len(seen) == 2, seen  # one look-up per batch, not one per row


class TestDrawNumbers:
    """The regulator form asks for the draw's number (双随机抽查编号); a number is looked
    up, and the record names the draw's id."""

    @staticmethod
    def _number(client: TestClient, did: str) -> int:
        return int(client.get(f"/api/draws/{did}").json()["number"])

    @pytest.mark.parametrize("written", ["{n}", " {n} ", "no. {n}", "No.{n}"])
    def test_a_number_names_the_draw(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any], written: str
    ) -> None:
        did, uscc = drawn["revealed"], drawn["planned"][0]
        n = self._number(client, did)
        out = o.post(client, o.spot_check(uscc=uscc, draw_id=written.format(n=n)),
                     headers=regulator)
        assert out["body"]["draw_id"] == did

    def test_an_unknown_number_is_an_unknown_draw(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        uscc = drawn["planned"][0]
        out = refused(client, o.spot_check(uscc=uscc, draw_id="999999"), regulator,
                      status=404, error="UnknownDraw")
        assert "no. 999999" in out["detail"] and uscc in out["detail"]

    def test_a_number_is_checked_like_an_id(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        spared = drawn["spared"][0]
        n = self._number(client, drawn["revealed"])
        refused(client, o.spot_check(uscc=spared, draw_id=str(n)), regulator,
                status=422, error="MerchantNotSelected")
        committed = self._number(client, drawn["committed"])
        refused(client, o.spot_check(uscc=drawn["planned"][0], draw_id=str(committed)),
                regulator, status=409, error="DrawNotRevealed")

    def test_the_list_finds_a_draws_records_by_number_or_id_in_any_case(
        self, client: TestClient, regulator: dict[str, str], drawn: dict[str, Any]
    ) -> None:
        did, uscc = drawn["revealed"], drawn["planned"][0]
        out = o.post(client, o.spot_check(uscc=uscc, draw_id=did), headers=regulator)
        n = self._number(client, did)
        for ref in (did, "0x" + did.upper(), str(n)):
            page = client.get("/api/supervision/records", params={"draw_id": ref},
                              headers=regulator).json()
            assert [r["record_id"] for r in page["items"]] == [out["record_id"]], ref
        none = client.get("/api/supervision/records", params={"draw_id": "999999"},
                          headers=regulator).json()
        assert none["items"] == [] and none["total"] == 0
        bad = client.get("/api/supervision/records", params={"draw_id": "D-1"},
                         headers=regulator)
        assert bad.status_code == 422 and bad.json()["error"] == "ValidationFailed"
