"""Staff lists that scale: paging, search by name and code, filters, sorting and a count;
verifying a merchant in one click from the list and from its page; complaints with the
merchants' names."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.ledger.models import LogLeaf
from backend.supervision import complaints
from backend.supervision.models import ComplaintCreate
from tests import factories
from tests.disclosure.test_form_errors import assert_chinese_only
from tests.disclosure.test_pages import HTML, _login
from tests.inspections.helpers import (
    add_inspectors,
    add_item,
    create_draw,
    ctx_of,
    seed_merchants,
)
from tests.supervision import outcomes as o


def _rows(html: str) -> list[str]:
    return re.findall(r'<td class="mono">([0-9A-Z]{18})</td>', html)


def _total(html: str) -> int:
    found = re.search(r'<span id="list-total">(\d+)</span>', html)
    assert found, "no count on the page"
    return int(found.group(1))


class TestMerchantList:
    def test_paging_search_filters_and_one_click_verify(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.list", role="regulator")
        bazhou = seed_merchants(client, tiers=["B"] * 55, verified=False)
        pingchang = seed_merchants(client, tiers=["C"] * 5, region="511923", verified=False)
        verified = seed_merchants(client, tiers=["A"] * 2)
        csrf = _login(client, "reg.list", factories.STAFF_PASSWORD)

        page1 = client.get("/regulator/merchants", headers=HTML).text
        assert _total(page1) == 60 and len(_rows(page1)) == 50
        assert "第 1 / 2 页" in page1 and 'rel="next"' in page1
        page2 = client.get("/regulator/merchants?page=2", headers=HTML).text
        assert len(_rows(page2)) == 10
        assert set(_rows(page1)) | set(_rows(page2)) == set(bazhou + pingchang)

        by_code = client.get(f"/regulator/merchants?q={bazhou[7]}", headers=HTML).text
        assert _rows(by_code) == [bazhou[7]]
        by_name = client.get(f"/regulator/merchants?q=测试商户{bazhou[3][-4:]}", headers=HTML).text
        assert bazhou[3] in _rows(by_name)
        region = client.get("/regulator/merchants?region=511923", headers=HTML).text
        assert sorted(_rows(region)) == sorted(pingchang)
        tier = client.get("/regulator/merchants?tier=C&status=all", headers=HTML).text
        assert sorted(_rows(tier)) == sorted(pingchang)
        done = client.get("/regulator/merchants?status=verified&sort=code", headers=HTML).text
        assert _rows(done) == sorted(verified)
        by_code_order = client.get("/regulator/merchants?sort=code&page=2", headers=HTML).text
        assert _rows(by_code_order) == sorted(bazhou + pingchang)[50:]

        back = "/regulator/merchants?region=511923"
        r = client.post(
            f"/regulator/merchants/{pingchang[0]}/verify",
            data={"csrf_token": csrf, "back": back},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == back + "&done=verified"
        after = client.get(back, headers=HTML).text
        assert _total(after) == 4 and pingchang[0] not in _rows(after)
        assert "已核验该经营者的登记信息" in client.get(r.headers["location"], headers=HTML).text

        # A refused filter is said in Chinese on the page.
        bad = client.get("/regulator/merchants?region=123456", headers=HTML)
        assert bad.status_code == 422 and "地区" in bad.text
        assert_chinese_only(bad.text)

        # Back to a foreign site is never followed.
        r = client.post(
            f"/regulator/merchants/{pingchang[1]}/verify",
            data={"csrf_token": csrf, "back": "//evil.example/x"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/regulator?done=verified"

    def test_verify_from_the_merchants_page(self, client: TestClient) -> None:
        factories.create_staff(client, username="reg.page", role="regulator")
        (code,) = seed_merchants(client, tiers=["B"], verified=False)
        assert 'id="staff-verify"' not in client.get(f"/merchants/{code}", headers=HTML).text
        csrf = _login(client, "reg.page", factories.STAFF_PASSWORD)
        page = client.get(f"/merchants/{code}", headers=HTML).text
        assert 'id="staff-verify"' in page
        r = client.post(
            f"/regulator/merchants/{code}/verify",
            data={"csrf_token": csrf, "back": f"/merchants/{code}"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].startswith(f"/merchants/{code}?")
        page = client.get(f"/merchants/{code}", headers=HTML).text
        assert 'id="staff-verify"' not in page and "已核验" in page


class TestComplaintList:
    def test_names_count_paging_and_search(self, client: TestClient) -> None:
        shop = factories.register(client, name="诚信粮油店")
        other = factories.register(client, name="老街菜市场")
        # From many addresses (one address may complain only so often).
        with ctx_of(client).db.session() as s:
            for k in range(23):
                uscc = shop["uscc"] if k < 22 else other["uscc"]
                content = f"缺斤短两{k}" if k < 22 else "秤不准"
                complaints.submit_complaint(
                    s,
                    principal=None,
                    data=ComplaintCreate(uscc=uscc, content=content),
                    address=f"10.0.0.{k}",
                )
        factories.create_staff(client, username="reg.c", role="regulator")
        _login(client, "reg.c", factories.STAFF_PASSWORD)
        page = client.get("/regulator/complaints", headers=HTML).text
        assert "共 23 件，第 1–20 件" in page and "诚信粮油店" in page
        assert 'rel="next"' in page
        page2 = client.get("/regulator/complaints?page=2", headers=HTML).text
        assert "第 21–23 件" in page2
        only = client.get(f"/regulator/complaints?uscc={other['uscc']}", headers=HTML).text
        assert "共 1 件" in only and "老街菜市场" in only and "诚信粮油店" not in only
        by_name = client.get("/regulator/complaints?uscc=粮油", headers=HTML).text
        assert "共 22 件" in by_name and "老街菜市场" not in by_name
        nobody = client.get("/regulator/complaints?uscc=没有这家店", headers=HTML).text
        assert "共 0 件" in nobody
        bad = client.get("/regulator/complaints?uscc=91350100M000100Y4Z", headers=HTML)
        assert bad.status_code == 422 and "第 18 位应为 3" in bad.text
        assert_chinese_only(bad.text)


class TestStaffRegistersAMerchant:
    def test_the_record_names_the_staff_account(self, client: TestClient) -> None:
        headers = factories.create_staff(client, username="reg.new", role="regulator")
        me = client.get("/api/auth/me", headers=headers).json()
        csrf = _login(client, "reg.new", factories.STAFF_PASSWORD)
        home = client.get("/regulator", headers=HTML).text
        assert 'href="/regulator/merchants/new"' in home
        page = client.get("/regulator/merchants/new", headers=HTML)
        assert page.status_code == 200 and "代经营者注册" in page.text

        empty = client.post("/regulator/merchants/new", data={"csrf_token": csrf}, headers=HTML)
        assert empty.status_code == 422 and empty.text.count('aria-invalid="true"') == 8
        assert_chinese_only(empty.text)

        body = factories.merchant_body(name="代注册的粮油店")
        password = body.pop("password")
        r = client.post(
            "/regulator/merchants/new",
            data={**body, "password": password, "password2": password, "csrf_token": csrf},
            headers=HTML,
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == f"/merchants/{body['uscc']}"
        with ctx_of(client).db.session() as s:
            leaf = s.execute(
                select(LogLeaf).where(
                    LogLeaf.record_type == "merchant.registered",  # type: ignore[arg-type]
                    LogLeaf.subject == body["uscc"],  # type: ignore[arg-type]
                )
            ).scalar_one()
            actor = json.loads(leaf.canonical)["actor"]
        assert actor == {"role": "regulator", "account": str(me["id"])}
        client.cookies.clear()
        # The merchant logs in with the initial password.
        _login(client, body["uscc"], password)

    def test_an_admin_is_told_in_chinese(self, client: TestClient) -> None:
        factories.create_staff(client, username="adm.new", role="admin")
        csrf = _login(client, "adm.new", factories.STAFF_PASSWORD)
        body = factories.merchant_body()
        password = body.pop("password")
        r = client.post(
            "/regulator/merchants/new",
            data={**body, "password": password, "password2": password, "csrf_token": csrf},
            headers=HTML,
        )
        assert r.status_code == 403 and "没有执行这个操作的权限" in r.text
        assert_chinese_only(r.text)


class TestOutcomeList:
    def test_count_names_filters(self, client: TestClient) -> None:
        staff = factories.create_staff(client, username="reg.o", role="regulator")
        shop = factories.register(client, name="诚信粮油店")
        other = factories.register(client, name="老街菜市场")
        for n, uscc in enumerate((shop["uscc"], shop["uscc"], other["uscc"])):
            o.post(client, o.spot_check(uscc=uscc, checked_on=o.days_ago(n + 1)), headers=staff)
        _login(client, "reg.o", factories.STAFF_PASSWORD)
        page = client.get("/regulator/outcomes/list", headers=HTML).text
        assert _total(page) == 3 and "诚信粮油店" in page and "老街菜市场" in page
        only = client.get(f"/regulator/outcomes/list?uscc={other['uscc']}", headers=HTML).text
        assert _total(only) == 1 and "诚信粮油店" not in only
        by_name = client.get("/regulator/outcomes/list?uscc=粮油", headers=HTML).text
        assert _total(by_name) == 2 and "老街菜市场" not in by_name
        none = client.get("/regulator/outcomes/list?kind=penalty", headers=HTML).text
        assert _total(none) == 0
        bad = client.get("/regulator/outcomes/list?kind=nonsense", headers=HTML)
        assert bad.status_code == 422 and "记录类型" in bad.text
        assert_chinese_only(bad.text)


class TestDrawList:
    def test_count_and_status_filter(self, client: TestClient) -> None:
        staff = factories.create_staff(client, username="reg.d", role="regulator")
        seed_merchants(client, tiers=["B"] * 3)
        add_inspectors(client, staff, count=3)
        item = add_item(client, staff)
        for _ in range(2):
            create_draw(client, staff, item_id=item)
        _login(client, "reg.d", factories.STAFF_PASSWORD)
        page = client.get("/regulator/draws", headers=HTML).text
        assert '<span id="draw-total">2</span>' in page
        committed = client.get("/regulator/draws?show=committed", headers=HTML).text
        assert '<span id="draw-total">2</span>' in committed
        revealed = client.get("/regulator/draws?show=revealed", headers=HTML).text
        assert '<span id="draw-total">0</span>' in revealed and "没有符合条件的抽查" in revealed


class TestInspectorList:
    def test_search_filter_count(self, client: TestClient) -> None:
        staff = factories.create_staff(client, username="reg.i", role="regulator")
        add_inspectors(client, staff, count=3)
        add_inspectors(client, staff, count=2, region="511923", unit="平昌县市场监督管理局")
        _login(client, "reg.i", factories.STAFF_PASSWORD)

        def total(query: str) -> int:
            page = client.get(f"/regulator/inspectors{query}", headers=HTML).text
            found = re.search(r'<span id="inspector-total">(\d+)</span>', page)
            assert found, page[-2000:]
            return int(found.group(1))

        assert total("") == 5
        assert total("?region=511923") == 2
        assert total("?q=平昌") == 2
        assert total("?q=检查员1") == 2
        assert total("?show=inactive") == 0
