"""The version stamp of a shop page: one read that says whether anything the page
shows has changed, so that an unchanged page is answered from a cache (``ETag``,
``304 Not Modified``, a CDN) without assembling it again.

A shop page is a function of:

- the records about the merchant (the newest leaf with ``subject`` = its code:
  registration, verification, pledges, awards, supervision outcomes, repairs);
- its newest wallet binding (the one part of its view that is not a record);
- whether those records are anchored yet (only while its newest record is not);
- the credit policy versions (the newest ``credit_policy`` leaf);
- the day (Asia/Shanghai): a rating changes with time alone when a factor's window
  ends (the rating's ``next_change_on``), a pledge or award expires, and the page's
  history chart runs to today. The day is part of the stamp, so a page seen on or
  after its ``next_change_on`` is built afresh and shows the new tier without any
  write; the rating cache's ``next_change_on`` is part of it too, so the sweep that
  moves it changes the stamp.

Reads only; never writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam

from backend.credit import queries as credit_queries
from backend.merchants.service import MerchantNotFound
from backend.shops.views import ANCHORED_SIZE, last_leaf_of, last_wallet_of

STAMP_COLUMNS = (
    last_leaf_of(bindparam("uscc")),
    last_wallet_of(bindparam("uscc")),
    ANCHORED_SIZE,
    credit_queries.newest_policy_leaf(),
    credit_queries.next_change_of(bindparam("uscc")),
)
"""The stamp's columns, for a query with the ``uscc`` parameter (a page's kept copy can
be read in the same query)."""


@dataclass(frozen=True)
class PageStamp:
    uscc: str
    parts: tuple[Any, ...]

    @property
    def etag(self) -> str:
        text = "|".join(str(p) for p in (self.uscc, *self.parts))
        return '"p' + hashlib.blake2b(text.encode(), digest_size=16).hexdigest() + '"'


def stamp_of(code: str, row: Any, *, today: date, version: str = "") -> PageStamp:
    """The stamp from :data:`STAMP_COLUMNS` read for merchant ``code``."""
    last_leaf, wallet, anchored, policy_leaf, next_change_on = tuple(row)
    if last_leaf is None:
        raise MerchantNotFound(f"no merchant with credit code {code}")
    # How many of its records are anchored: once all are, later checkpoints change nothing.
    anchored_upto = min(int(anchored), int(last_leaf) + 1)
    return PageStamp(
        code, (last_leaf, wallet, anchored_upto, policy_leaf, next_change_on, today, version)
    )

