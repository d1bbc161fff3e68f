"""Reading a trust root a verifier was given: a file or an http(s) URL.

Used by verifiers and witnesses; never reads the service's settings or database.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from backend.ledger.trustroot import TrustRoot, TrustRootError, parse_trust_root


def load_trust_root(source: str, *, timeout_s: float = 15.0) -> TrustRoot:
    """A trust root from a file or an http(s) URL; raises :class:`TrustRootError`."""
    try:
        if source.startswith(("http://", "https://")):
            r = httpx.get(source, timeout=timeout_s, follow_redirects=True)
            if r.status_code != 200:
                raise TrustRootError(f"{source} answered HTTP {r.status_code}")
            text = r.text
        else:
            text = Path(source).read_text("utf-8")
        data = json.loads(text)
    except (OSError, httpx.HTTPError) as exc:
        raise TrustRootError(f"cannot read the trust root {source}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrustRootError(f"the trust root {source} is not JSON: {exc}") from None
    return parse_trust_root(data)
