"""The printable pledge sign: SVG (escaped, valid XML, QR link) and PDF
(embedded CJK font, the merchant's name as real text)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.pledges import signs
from tests import factories
from tests.conftest import require
from tests.pledges.pdftext import pdf_text

SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '巴中<script>alert("x")</script>&"粮油"店'


@pytest.fixture
def pledged(client: TestClient) -> dict[str, object]:
    m, headers = factories.merchant_with_login(client, name=HOSTILE, sector="fuel")
    factories.verify(client, m["uscc"])
    factories.make_pledge(
        client, headers=headers, sector="fuel", extra_commitments="加油站外设公平量器。"
    )
    return m


def test_svg(client: TestClient, pledged: dict[str, object]) -> None:
    uscc = pledged["uscc"]
    resp = client.get(f"/merchants/{uscc}/sign.svg")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    text = resp.text
    assert "<script" not in text
    assert "&lt;script&gt;" in text
    root = ET.fromstring(text.encode())  # well-formed XML
    texts = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    joined = "".join(texts)
    assert HOSTILE in joined  # kept exactly, shown as text
    assert f"统一社会信用代码：{uscc}" in texts
    assert "配备经检定合格的20升标准金属量器" in joined
    assert "加油站外设公平量器" in joined
    assert any(t.startswith("承诺期限：") for t in texts)
    assert "登记状态：已核验" in joined  # no sign before verification (issue 15 M5)
    link = root.find(f"{SVG_NS}a")
    assert link is not None
    assert link.get("href") == f"http://127.0.0.1:8000/merchants/{uscc}"
    path = link.find(f"{SVG_NS}path")
    assert path is not None and path.get("d", "").startswith("M")


def test_qr_encodes_the_public_page(client: TestClient, pledged: dict[str, object]) -> None:
    uscc = pledged["uscc"]
    text = client.get(f"/merchants/{uscc}/sign.svg").text
    url = f"http://127.0.0.1:8000/merchants/{uscc}"
    assert signs._qr_path(signs.qr_matrix(url)) in text


def test_pdf(client: TestClient, pledged: dict[str, object]) -> None:
    uscc = pledged["uscc"]
    resp = client.get(f"/merchants/{uscc}/sign.pdf")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/pdf"
    pdf = resp.content
    assert pdf.startswith(b"%PDF-")
    font = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
    if font.exists():
        assert b"/FontFile2" in pdf  # the CJK font is embedded (subset)
        assert re.search(rb"/BaseFont /[A-Z]{6}\+WenQuanYiZenHei", pdf)
    text = pdf_text(pdf)
    assert HOSTILE in text
    assert uscc in text  # type: ignore[operator]
    assert "诚信计量自我承诺" in text
    assert f"/URI (http://127.0.0.1:8000/merchants/{uscc})".encode() in pdf


def test_no_active_pledge_no_sign(client: TestClient) -> None:
    m = factories.register_verified(client)
    for ext in ("svg", "pdf"):
        resp = client.get(f"/merchants/{m['uscc']}/sign.{ext}")
        assert resp.status_code == 404
        assert resp.json()["error"] == "SignNotAvailable"


def test_no_sign_before_verification(client: TestClient) -> None:
    """Anyone can register any valid code: no printable sign until a regulator verifies the
    registration (issue 15 M5), with a clear error; a browser gets it in Chinese."""
    m, headers = factories.merchant_with_login(client)
    factories.make_pledge(client, headers=headers)
    for ext in ("svg", "pdf"):
        resp = client.get(f"/merchants/{m['uscc']}/sign.{ext}")
        assert resp.status_code == 409
        body = resp.json()
        assert body["error"] == "MerchantNotVerified"
        assert body["verification"] == "unverified" and body["tier"] is None
        assert body["detail_zh"].startswith("待核验：登记信息尚未经监管部门核验")
    page = client.get(f"/merchants/{m['uscc']}/sign.pdf", headers={"Accept": "text/html"})
    assert page.status_code == 409 and "待核验：登记信息尚未经监管部门核验" in page.text
    factories.verify(client, m["uscc"])
    assert client.get(f"/merchants/{m['uscc']}/sign.svg").status_code == 200


def test_unknown_merchant(client: TestClient) -> None:
    resp = client.get("/merchants/91511902MA62Q3T556/sign.pdf")
    assert resp.status_code == 404
    assert resp.json()["error"] == "MerchantNotFound"


def _sign_data() -> signs.SignData:
    return signs.SignData(
        uscc="91511902MA62Q3T556",
        name="巴" * 100,
        verified=True,
        title="集贸市场诚信计量承诺书",
        items=["很长的承诺条款" * 12] * 12,
        extra_commitments="其他" * 400,
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 1, 1),
        record_id="ab" * 32,
        url="http://127.0.0.1:8000/merchants/91511902MA62Q3T556",
    )


def test_long_templates_fit_the_page() -> None:
    data = _sign_data()
    lay = signs.layout(data, signs.estimate_width)
    item_lines = [ln for ln in lay.lines if ln.x == signs.MARGIN and ln.y < lay.qr_y]
    assert max(ln.y for ln in item_lines) < lay.qr_y
    assert all(
        signs.estimate_width(ln.text, ln.size) <= signs.PAGE_W - 2 * signs.MARGIN + 0.01
        for ln in lay.lines
        if ln.anchor == "start"
    )
    assert signs.render_pdf(data).startswith(b"%PDF-")


def test_pdf_falls_back_to_the_builtin_cid_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signs, "FONT_CANDIDATES", ((Path("/nonexistent.ttc"), 0),))
    monkeypatch.setattr(signs, "_font_name", None)
    assert signs.pdf_font() == signs.CID_FALLBACK
    assert signs.render_pdf(_sign_data()).startswith(b"%PDF-")


# --- fonts (issue 15, L1): with Debian's default CJK font, Noto Sans CJK, which reportlab
# refuses (PostScript outlines), sign.pdf was 500 for every merchant.

NOTO = (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2)
WQY = (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0)


def _fonts(monkeypatch: pytest.MonkeyPatch, *candidates: tuple[Path, int]) -> None:
    for path, _ in candidates:
        require(path.exists(), f"{path} is not installed (scripts/setup.sh --system)")
    monkeypatch.setattr(signs, "FONT_CANDIDATES", candidates)
    monkeypatch.setattr(signs, "_font_name", None)
    monkeypatch.setattr(signs, "_font_failure", None)


def test_noto_alone_gives_a_pdf_with_the_builtin_font(
    client: TestClient, pledged: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fonts(monkeypatch, NOTO)
    resp = client.get(f"/merchants/{pledged['uscc']}/sign.pdf")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pdf"
    assert resp.content.startswith(b"%PDF-") and b"/STSong-Light" in resp.content


def test_a_refused_font_is_passed_over_for_the_next(
    client: TestClient, pledged: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fonts(monkeypatch, NOTO, WQY)
    resp = client.get(f"/merchants/{pledged['uscc']}/sign.pdf")
    assert resp.status_code == 200, resp.text
    assert re.search(rb"/BaseFont /[A-Z]{6}\+WenQuanYiZenHei", resp.content)


def test_no_font_at_all_serves_the_svg_with_a_note(
    client: TestClient, pledged: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fonts(monkeypatch, NOTO)
    monkeypatch.setattr(signs, "CID_FALLBACK", "NoSuchCIDFont-Light")  # a real load failure
    for _ in range(2):  # the failure is remembered, and answered the same way
        resp = client.get(f"/merchants/{pledged['uscc']}/sign.pdf")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("image/svg+xml")
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["content-disposition"].endswith('.svg"')
        root = ET.fromstring(resp.content)
        texts = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
        assert signs.PDF_NOTE in texts
        assert HOSTILE in "".join(texts)


def test_sign_carries_the_trust_root_fingerprint(
    client: TestClient, pledged: dict[str, object]
) -> None:
    uscc = pledged["uscc"]
    client.app.state.ctx.ledger()  # type: ignore[attr-defined]
    fp = client.get("/.well-known/honest-metering/trust-root.json").headers["x-fingerprint"]
    short = " ".join(fp[i : i + 4] for i in range(0, 16, 4))
    root = ET.fromstring(client.get(f"/merchants/{uscc}/sign.svg").content)
    assert f"信任根指纹 {short}" in [t.text for t in root.iter(f"{SVG_NS}text")]


def test_no_fingerprint_line_while_unknown() -> None:
    sign = signs.SignData(
        uscc="91511902MA62Q3T556", name="店", verified=True, title="t", items=["a"],
        extra_commitments=None, valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1),
        record_id="ab" * 32, url="http://x/m",
    )
    texts = [line.text for line in signs.layout(sign, signs.estimate_width).lines]
    assert not any(t.startswith("信任根指纹") for t in texts)
