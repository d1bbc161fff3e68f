"""Who may call each write endpoint of supervision and credit:
anonymous, the merchant concerned, another merchant, a regulator, an admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.app import create_app
from backend.timeutil import today_shanghai
from tests import factories
from tests.conftest import make_settings
from tests.supervision import outcomes as o

ROLES = ("anonymous", "merchant", "other_merchant", "regulator", "admin")


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    uscc: str
    other_uscc: str

    def fresh_penalty(self) -> str:
        """A performed penalty of the merchant, old enough for credit repair."""
        p = o.post(
            self.client,
            o.penalty(uscc=self.uscc, decided_on=o.days_ago(200), performed=True,
                      decision_no=f"P-{factories.make_uscc()}"),
            headers=self.headers["regulator"],
        )
        return str(p["record_id"])

    def fresh_repair(self) -> str:
        resp = self.client.post(
            "/api/credit-repairs",
            json={"penalty_record_id": self.fresh_penalty(), "statement": "已整改"},
            headers=self.headers["merchant"],
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["repair_id"])

    def fresh_complaint(self) -> str:
        forget_complaints(self.client)
        resp = self.client.post("/api/complaints", json={"uscc": self.uscc, "content": "缺斤少两"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["complaint_id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("access") / "data", anchor_enabled=False)
    with TestClient(create_app(settings)) as client:
        m, mh = factories.merchant_with_login(client)
        other, oh = factories.merchant_with_login(client)
        headers = {
            "anonymous": {},
            "merchant": mh,
            "other_merchant": oh,
            "regulator": factories.create_staff(client, username="reg-access", role="regulator"),
            "admin": factories.create_staff(client, username="admin-access", role="admin"),
        }
        yield World(client, headers, m["uscc"], other["uscc"])


Call = Callable[[World, dict[str, str]], Any]


def _record(w: World, h: dict[str, str]) -> Any:
    return w.client.post("/api/supervision/records", json=o.spot_check(uscc=w.uscc), headers=h)


def _bulk(w: World, h: dict[str, str]) -> Any:
    return w.client.post(
        "/api/supervision/records/bulk",
        content=f'{{"kind":"spot_check","uscc":"{w.uscc}","result":"未发现问题",'
        f'"checked_on":"{o.days_ago(1)}","authority":"x"}}\n'.encode(),
        headers={**h, "Content-Type": "application/x-ndjson"},
    )


def forget_complaints(client: TestClient) -> None:
    """Reset the per-address complaint limit: every request here comes from one address."""
    with client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        s.execute(text("DELETE FROM rate_limit WHERE key LIKE 'complaint:%'"))
        s.commit()


def _complaint(w: World, h: dict[str, str]) -> Any:
    forget_complaints(w.client)
    return w.client.post("/api/complaints", json={"uscc": w.uscc, "content": "投诉"}, headers=h)


def _verify_complaint(w: World, h: dict[str, str]) -> Any:
    return w.client.post(
        f"/api/complaints/{w.fresh_complaint()}/verification",
        json={"outcome": "verified", "summary": "属实"},
        headers=h,
    )


def _put_policy(w: World, h: dict[str, str]) -> Any:
    doc = w.client.get("/api/credit/policy").json()["document"]
    doc.pop("version")
    doc["effective_from"] = today_shanghai().isoformat()
    return w.client.put("/api/credit/policy", json=doc, headers=h)


def _apply_repair(w: World, h: dict[str, str]) -> Any:
    return w.client.post(
        "/api/credit-repairs",
        json={"penalty_record_id": w.fresh_penalty(), "statement": "已整改"},
        headers=h,
    )


def _decide_repair(w: World, h: dict[str, str]) -> Any:
    return w.client.post(
        f"/api/credit-repairs/{w.fresh_repair()}/decision",
        json={"decision": "rejected", "reason": "材料不全"},
        headers=h,
    )


MATRIX: dict[str, tuple[Call, tuple[int, int, int, int, int]]] = {
    #                                anonymous merchant other regulator admin
    "POST /api/supervision/records": (_record, (401, 403, 403, 201, 201)),
    "POST /api/supervision/records/bulk": (_bulk, (401, 403, 403, 201, 201)),
    "POST /api/complaints": (_complaint, (201, 201, 201, 201, 201)),
    "POST /api/complaints/{id}/verification": (_verify_complaint, (401, 403, 403, 201, 201)),
    "PUT /api/credit/policy": (_put_policy, (401, 403, 403, 403, 200)),
    "POST /api/credit-repairs": (_apply_repair, (401, 201, 403, 403, 403)),
    "POST /api/credit-repairs/{id}/decision": (_decide_repair, (401, 403, 403, 201, 201)),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_access(world: World, endpoint: str, role: str) -> None:
    call, statuses = MATRIX[endpoint]
    expected = statuses[ROLES.index(role)]
    resp = call(world, world.headers[role])
    assert resp.status_code == expected, resp.text
    if expected == 401:
        assert resp.json()["error"] == "NotAuthenticated"
    elif expected == 403:
        assert resp.json()["error"] in ("RoleNotPermitted", "NotOwnMerchant")
