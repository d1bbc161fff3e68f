"""The printable pledge sign for a merchant's counter, as SVG and as PDF.

One layout (A4 portrait, millimetres) feeds both renderers; only the text
measure differs (an estimate for SVG, the embedded font's metrics for PDF).
The SVG comes from a Jinja template with autoescaping, so a merchant name
such as ``<script>`` prints as text. The PDF embeds the first CJK font of
:data:`FONT_CANDIDATES` that reportlab loads (it takes TrueType outlines only:
Noto Sans CJK, Debian's default CJK font, has PostScript outlines and is
refused, so it is passed over); without one it falls back to reportlab's
built-in STSong-Light CID font, which a PDF viewer supplies itself, and says so
in the log. If even that fails, :func:`render_pdf` raises :class:`PdfUnavailable`
and the sign is served as SVG with a note saying why: never an error.

The QR code links to the merchant's public page.
"""

from __future__ import annotations

import io
import logging
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import qrcode
import qrcode.constants
from jinja2 import Environment, FileSystemLoader, select_autoescape

log = logging.getLogger(__name__)

PAGE_W, PAGE_H = 210.0, 297.0
MARGIN = 18.0
RED = "#c8102e"
INK = "#1a1a1a"
GREY = "#555555"
# (file, index in a collection), in order of preference; Debian package names in comments.
FONT_CANDIDATES = (
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),  # fonts-wqy-zenhei
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),  # fonts-wqy-microhei
    (Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), 0),  # fonts-droid-fallback
    (Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 0),  # fonts-arphic-uming
    (Path("/usr/share/fonts/truetype/arphic/ukai.ttc"), 0),  # fonts-arphic-ukai
    # fonts-noto-cjk: PostScript (CFF) outlines, which reportlab cannot embed today.
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),
)
CID_FALLBACK = "STSong-Light"
SVG_FONT_FAMILY = (
    "'WenQuanYi Zen Hei','Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',"
    "'PingFang SC',sans-serif"
)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(["svg", "html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class SignData:
    uscc: str
    name: str
    verified: bool
    title: str
    items: list[str]
    extra_commitments: str | None
    valid_from: date
    valid_until: date  # exclusive
    record_id: str
    url: str
    demonstration_unit: bool = False
    # Short form of the trust root's fingerprint (backend/ledger/trustroot.py), printed so
    # that a visitor can compare it with what a verifier pins; None while unknown.
    trust_root: str | None = None


@dataclass(frozen=True)
class Line:
    text: str
    x: float
    y: float  # baseline, from the top
    size: float
    bold: bool = False
    color: str = INK
    anchor: str = "start"  # or "middle"


@dataclass(frozen=True)
class Layout:
    lines: list[Line]
    qr_x: float
    qr_y: float
    qr_size: float
    qr: list[list[bool]]


Measure = Callable[[str, float], float]


def estimate_width(text: str, size: float) -> float:
    """Width in the units of ``size``: full-width characters 1 em, others ~0.55 em."""
    return sum(size if unicodedata.east_asian_width(c) in ("W", "F") else 0.55 * size for c in text)


def wrap(text: str, *, width: float, size: float, measure: Measure) -> list[str]:
    """Greedy wrap by character (Chinese has no spaces to break at)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for ch in paragraph:
            if current and measure(current + ch, size) > width:
                lines.append(current)
                current = ch
            else:
                current += ch
        lines.append(current)
    return lines


def qr_matrix(url: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    qr.add_data(url)
    qr.make(fit=True)
    return [[bool(cell) for cell in row] for row in qr.get_matrix()]


def _zh_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def layout(sign: SignData, measure: Measure) -> Layout:
    lines: list[Line] = []
    cx, text_w = PAGE_W / 2, PAGE_W - 2 * MARGIN
    lines.append(Line("诚信计量自我承诺", cx, 34, 14, bold=True, color=RED, anchor="middle"))
    lines.append(Line(sign.title, cx, 44, 6, color=RED, anchor="middle"))
    y = 58.0
    for part in wrap(sign.name, width=text_w, size=8, measure=measure):
        lines.append(Line(part, cx, y, 8, bold=True, anchor="middle"))
        y += 10
    lines.append(Line(f"统一社会信用代码：{sign.uscc}", cx, y, 4.6, anchor="middle"))
    y += 7
    status = "已核验" if sign.verified else "未核验（市场监管部门尚未核验登记信息）"
    if sign.demonstration_unit:
        status += " · 诚信计量自我承诺示范单位"
    lines.append(
        Line(f"登记状态：{status}", cx, y, 4, color=GREY if sign.verified else RED, anchor="middle")
    )
    y += 11
    lines.append(Line("本单位郑重承诺：", MARGIN, y, 5, bold=True))
    y += 8

    # Shrink the item text until everything fits above the QR code.
    bottom = PAGE_H - 78
    texts = list(sign.items) + (
        [f"其他承诺：{sign.extra_commitments}"] if sign.extra_commitments else []
    )
    size = 4.4
    while True:
        step = size * 1.45
        blocks = [
            wrap(f"{i}. {t}", width=text_w, size=size, measure=measure)
            for i, t in enumerate(texts, start=1)
        ]
        height = sum(len(b) * step + size * 0.5 for b in blocks)
        if y + height <= bottom or size <= 2.6:
            break
        size = round(size - 0.2, 2)
    for block in blocks:
        for part in block:
            lines.append(Line(part, MARGIN, y, size))
            y += step
        y += size * 0.5

    qr_size = 44.0
    qr_x, qr_y = PAGE_W - MARGIN - qr_size, PAGE_H - 20 - qr_size - 8
    last = sign.valid_until - timedelta(days=1)
    info_y = qr_y + 8
    info = [
        f"承诺期限：{_zh_date(sign.valid_from)}至{_zh_date(last)}",
        "承诺已记入诚信计量区块链存证，任何人可查验",
        f"存证编号：{sign.record_id[:16]}…",
        "扫描右侧二维码查看承诺、信用等级与查验结果",
    ]
    for i, text in enumerate(info):
        lines.append(
            Line(
                text,
                MARGIN,
                info_y + i * 7,
                4 if i == 0 else 3.4,
                bold=i == 0,
                color=INK if i == 0 else GREY,
            )
        )
    lines.append(Line(sign.url, MARGIN, info_y + len(info) * 7, 3, color=GREY))
    lines.append(
        Line("巴中市诚信计量可信服务平台", cx, PAGE_H - 14, 3.6, color=GREY, anchor="middle")
    )
    if sign.trust_root:
        lines.append(
            Line(f"信任根指纹 {sign.trust_root}", cx, PAGE_H - 9, 3, color=GREY, anchor="middle")
        )
    return Layout(lines, qr_x, qr_y, qr_size, qr_matrix(sign.url))


# --- SVG ----------------------------------------------------------------------------


def _qr_path(matrix: list[list[bool]]) -> str:
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return "".join(parts)


PDF_NOTE = "PDF 版暂不可用（服务器缺少可嵌入的中文字体），此为同样内容的 SVG 版，可直接打印"


def render_svg(sign: SignData, *, note: str | None = None) -> str:
    """The sign as SVG; ``note`` is printed small at the top (why this is not a PDF)."""
    lay = layout(sign, estimate_width)
    modules = len(lay.qr)
    return _env.get_template("sign_template.svg").render(
        sign=sign,
        note=note,
        note_y=20,
        center=PAGE_W / 2,
        lines=lay.lines,
        width=PAGE_W,
        height=PAGE_H,
        font_family=SVG_FONT_FAMILY,
        red=RED,
        qr_x=lay.qr_x,
        qr_y=lay.qr_y,
        qr_size=lay.qr_size,
        qr_scale=lay.qr_size / modules,
        qr_path=_qr_path(lay.qr),
    )


# --- PDF ----------------------------------------------------------------------------

class PdfUnavailable(Exception):
    """No font could be loaded (or reportlab failed): the sign is served as SVG instead."""


_font_lock = threading.Lock()
_font_name: str | None = None
_font_failure: str | None = None


def pdf_font() -> str:
    """Register (once) and name the CJK font the PDF uses: the first candidate that
    loads, else the CID font; :class:`PdfUnavailable` if none does."""
    global _font_name, _font_failure
    with _font_lock:
        if _font_name is not None:
            return _font_name
        if _font_failure is not None:
            raise PdfUnavailable(_font_failure)
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.pdfbase.ttfonts import TTFont

        refused: list[str] = []
        for path, index in FONT_CANDIDATES:
            if not path.exists():
                continue
            name = "HM-CJK"
            try:
                pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=index))
            except Exception as exc:  # noqa: BLE001 - reportlab raises several kinds
                log.info("pledge-sign PDFs cannot use %s: %s", path, exc)
                refused.append(f"{path.name} ({exc})")
                continue
            _font_name = name
            return name
        log.warning(
            "no CJK TrueType font loads (%s); pledge-sign PDFs use the non-embedded %s "
            "font; install fonts-wqy-zenhei (scripts/setup.sh --system) to embed one",
            "; ".join(refused) or "none of " + ", ".join(str(p) for p, _ in FONT_CANDIDATES),
            CID_FALLBACK,
        )
        try:
            pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
        except Exception as exc:  # noqa: BLE001
            _font_failure = (
                f"no CJK font loads (the built-in {CID_FALLBACK} either: {exc}); install "
                "fonts-wqy-zenhei"
            )
            log.error("pledge-sign PDFs are unavailable: %s", _font_failure)
            raise PdfUnavailable(_font_failure) from None
        _font_name = CID_FALLBACK
        return _font_name


def render_pdf(sign: SignData) -> bytes:
    """The sign as PDF; :class:`PdfUnavailable` when no font loads or reportlab fails."""
    font = pdf_font()
    try:
        return _render_pdf(sign, font)
    except Exception as exc:
        log.exception("pledge sign PDF for %s failed", sign.uscc)
        raise PdfUnavailable(f"the PDF could not be made ({type(exc).__name__})") from None


def _render_pdf(sign: SignData, font: str) -> bytes:
    from reportlab.lib.colors import HexColor
    from reportlab.lib.units import mm
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen import canvas

    def measure(text: str, size: float) -> float:
        return float(stringWidth(text, font, size * mm)) / mm

    lay = layout(sign, measure)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(PAGE_W * mm, PAGE_H * mm), invariant=True)
    c.setTitle(f"{sign.title} - {sign.name}")
    c.setAuthor("巴中市诚信计量可信服务平台")
    c.setSubject(sign.url)
    c.setStrokeColor(HexColor(RED))
    c.setLineWidth(1.2 * mm)
    c.rect(8 * mm, 8 * mm, (PAGE_W - 16) * mm, (PAGE_H - 16) * mm)
    c.setLineWidth(0.3 * mm)
    c.rect(11 * mm, 11 * mm, (PAGE_W - 22) * mm, (PAGE_H - 22) * mm)
    c.setLineWidth(0.12 * mm)
    for line in lay.lines:
        size = line.size * mm
        x, y = line.x * mm, (PAGE_H - line.y) * mm
        if line.anchor == "middle":
            x -= stringWidth(line.text, font, size) / 2
        c.setFillColor(HexColor(line.color))
        c.setStrokeColor(HexColor(line.color))
        text = c.beginText(x, y)
        text.setFont(font, size)
        # The CJK font has no bold face: bold is fill plus a thin outline.
        text.setTextRenderMode(2 if line.bold else 0)
        text.textOut(line.text)
        c.drawText(text)
    c.setFillColor(HexColor("#000000"))
    cell = lay.qr_size / len(lay.qr) * mm
    for r, row in enumerate(lay.qr):
        for col, dark in enumerate(row):
            if dark:
                c.rect(
                    lay.qr_x * mm + col * cell,
                    (PAGE_H - lay.qr_y) * mm - (r + 1) * cell,
                    cell,
                    cell,
                    stroke=0,
                    fill=1,
                )
    c.linkURL(
        sign.url,
        (
            lay.qr_x * mm,
            (PAGE_H - lay.qr_y - lay.qr_size) * mm,
            (lay.qr_x + lay.qr_size) * mm,
            (PAGE_H - lay.qr_y) * mm,
        ),
    )
    c.showPage()
    c.save()
    return buf.getvalue()
