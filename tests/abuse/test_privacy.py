"""What the public (and another merchant) can read never contains a private value.

Every GET route of the app — API, public pages, the pledge sign — is requested with its
path parameters filled from a populated world (tests/abuse/world.py), as anonymous and
as another merchant, and every response is searched for the values planted as private:
the merchant's contact person and phone (and the salt of their digest), a complainant's
contact, a pending complaint's text, why a complaint was rejected, an inspector's name
(and its salt), a conflict-of-interest reason, a draw's seed before its reveal, and
password hashes. The routes come from the app, so a new GET route is searched too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from backend.app import create_app
from tests.abuse.world import World, build_world
from tests.conftest import make_settings

HTML = {"Accept": "text/html,application/xhtml+xml"}
VIEWERS = ("anonymous", "other_merchant")
# Public searches and lists that could surface a merchant's or an inspector's details.
EXTRA = (
    "/api/merchants?q={uscc}",
    "/api/merchants?q=测试",
    "/search?q=测试",
    "/api/inspectors",
    "/api/inspectors?active=true",
    "/api/draws",
    "/api/merchants/{uscc}/records",
    "/api/credit-repairs",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("privacy") / "data", anchor_enabled=False)
    with TestClient(create_app(settings)) as client:
        yield build_world(client)


def get_urls(w: World) -> list[str]:
    """Every GET route with its path parameters filled, once with the revealed draw and
    once with the draw whose seed is still secret; then the extra searches."""
    urls: list[str] = []
    for rc in iter_route_contexts(w.client.app.routes):  # type: ignore[attr-defined]
        if "GET" not in (rc.methods or set()) or rc.path is None:
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", rc.path)
        missing = [n for n in names if n not in w.ids]
        assert not missing, f"{rc.path}: no value for {missing} in the world's ids"
        for draw in (w.ids["draw"], w.ids["committed_draw"]):
            values = {**w.ids, "draw": draw, "ref": draw}
            url = rc.path
            for name in names:
                url = re.sub(rf"{{{name}(?::\w+)?}}", values[name], url)
            if url not in urls:
                urls.append(url)
    return urls + [u.format(**w.ids) for u in EXTRA]


def readable_text(resp: httpx.Response) -> str:
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return json.dumps(resp.json(), ensure_ascii=False)
    if ctype.startswith("application/pdf"):
        return ""  # compressed streams; the same data is checked on the SVG sign
    return resp.text


@pytest.mark.parametrize("viewer", VIEWERS)
def test_no_private_value_in_any_readable_response(world: World, viewer: str) -> None:
    urls = get_urls(world)
    assert len(urls) > 40, urls
    leaks = []
    served = 0
    for url in urls:
        world.client.cookies.clear()
        accept = {} if url.startswith("/api/") else HTML
        resp = world.client.get(url, headers={**accept, **world.bearer(viewer)})
        assert resp.status_code < 500, (url, resp.status_code, resp.text[:300])
        if resp.status_code >= 400:
            continue
        served += 1
        text = readable_text(resp)
        leaks += [f"{url}: {label}" for label, value in world.secrets.items() if value in text]
    assert not leaks, "private values in responses:\n" + "\n".join(leaks)
    assert served > 30, f"only {served} of {len(urls)} URLs answered; is the world populated?"


def test_staff_do_see_them(world: World) -> None:
    """The planted values are real (the scan above would pass vacuously otherwise)."""
    staff = world.staff
    complaint = world.client.get(f"/api/complaints/{world.ids['complaint_id']}", headers=staff)
    assert world.secrets["complaint_contact"] in complaint.text
    inspectors = world.client.get("/api/inspectors", headers=staff)
    assert world.secrets["inspector_name"] in inspectors.text
    conflicts = world.client.get(
        f"/api/inspectors/{world.ids['inspector_id']}/conflicts", headers=staff
    )
    assert world.secrets["conflict_reason"] in conflicts.text
