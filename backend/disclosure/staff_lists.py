"""Filters of the staff's short lists that are read whole (the inspector directory:
hundreds of people, not the city's merchants), so that a page can search and page them.
Listing only: no rule lives here."""

from __future__ import annotations

from collections.abc import Sequence

from backend.inspections.models import InspectorPublic


def inspectors(
    rows: Sequence[InspectorPublic], *, q: str = "", region: str = "", show: str = ""
) -> list[InspectorPublic]:
    """The inspectors matching a name, number or unit fragment, a region and a status
    (``active``, ``inactive``; anything else: all), in directory order."""
    needle = q.casefold()
    out = []
    for r in rows:
        if needle and not any(needle in (v or "").casefold() for v in (r.name, r.id, r.unit)):
            continue
        if region and r.region_code != region:
            continue
        if (show == "active" and not r.active) or (show == "inactive" and r.active):
            continue
        out.append(r)
    return out
