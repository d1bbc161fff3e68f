"""Text of a PDF for tests: ``pdftotext`` when installed, else a small reader
for what reportlab writes (Flate/ASCII85 streams, ``Tj`` strings in
single-byte subset fonts, each with a ``ToUnicode`` CMap).

It reads the PDF the way a viewer's copy-and-paste does, through the
ToUnicode maps, so it proves the Chinese text is really there (and
searchable), not just drawn as glyphs."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

_OBJ = re.compile(rb"(\d+) 0 obj\s*(.*?)endobj", re.S)
_STREAM = re.compile(rb"<<(.*?)>>\s*stream\r?\n(.*?)(?:\r?\n)?endstream", re.S)


def _decode_stream(head: bytes, data: bytes) -> bytes:
    filters = re.findall(rb"/(ASCII85Decode|FlateDecode)", head)
    for f in filters:
        if f == b"ASCII85Decode":
            text = data.strip()
            if text.startswith(b"<~"):
                text = text[2:]
            data = base64.a85decode(text.removesuffix(b"~>"))
        else:
            data = zlib.decompress(data)
    return data


def _objects(pdf: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for num, body in _OBJ.findall(pdf):
        m = _STREAM.search(body)
        if m:
            out[int(num)] = (m.group(1), _decode_stream(m.group(1), m.group(2)))
        else:
            out[int(num)] = (body, None)
    return out


def _cmap(data: bytes) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, dst in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            start = int.from_bytes(bytes.fromhex(dst.decode()), "big")
            for i, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                mapping[code] = chr(start + i)
    return mapping


def _literal(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C:  # backslash
            nxt = raw[i + 1 : i + 2]
            if nxt.isdigit():
                digits = re.match(rb"[0-7]{1,3}", raw[i + 1 :])
                assert digits is not None
                out.append(int(digits.group(0), 8))
                i += 1 + len(digits.group(0))
                continue
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(nxt, nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _fallback(pdf: bytes) -> str:
    objs = _objects(pdf)
    fonts: dict[bytes, dict[int, str]] = {}
    for head, _ in objs.values():
        for name, ref in re.findall(rb"/([\w+\-]+) (\d+) 0 R", head):
            font = objs.get(int(ref))
            if font is None:
                continue
            tu = re.search(rb"/ToUnicode (\d+) 0 R", font[0])
            if tu and objs.get(int(tu.group(1)), (b"", None))[1] is not None:
                fonts[name] = _cmap(objs[int(tu.group(1))][1] or b"")
    lines = []
    for _head, data in objs.values():
        if data is None or b"BT" not in data:
            continue
        current: dict[int, str] = {}
        for m in re.finditer(rb"/([\w+\-]+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) Tj|(ET)", data, re.S):
            if m.group(1) is not None:
                current = fonts.get(m.group(1), {})
            elif m.group(3) is not None:
                lines.append("\n")
            else:
                lines.append("".join(current.get(b, chr(b)) for b in _literal(m.group(2))))
    return "".join(lines)


def pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "doc.pdf"
            path.write_bytes(pdf)
            return subprocess.run(
                ["pdftotext", "-enc", "UTF-8", str(path), "-"],
                check=True,
                capture_output=True,
            ).stdout.decode()
    return _fallback(pdf)
