"""The logged-in areas: the merchant's own pages and the regulator's workbench.

Forms post here with the session cookie and its CSRF token (checked by
``backend.accounts.deps`` before any handler runs: a cookie-authenticated POST
without the session's token never reaches a handler). Each handler calls one
domain service and redirects (post/redirect/get, with a fixed notice code) or
re-renders the form with the service's error next to it. Who may do what is
decided by the services (and ``require_role`` of ``backend.accounts``), not here.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.disclosure import (
    area_bulk,
    area_cases,
    area_inspections,
    area_merchant,
    area_outcomes,
)

pages = APIRouter(include_in_schema=False)
for _area in (area_merchant, area_outcomes, area_bulk, area_cases, area_inspections):
    pages.include_router(_area.pages)
