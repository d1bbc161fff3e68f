"""The log's Ed25519 signing key (signed checkpoints, trust roots): load, create, rotate.

Kept in one file, mode 0600 (``backend/privatefiles.py``), as the signer-key text of
``backend/ledger/note.py``. Development creates it on first use; production never
makes one by itself: without it the service runs but signs no checkpoint (503 and a
loud log line at start; ``honest-metering log-key rotate`` makes it). A rotation keeps the old
key beside the new one, named by its key id, so the trust root's next version can be
signed by both (the handover).

This module never prints or logs a private key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from backend.config import Settings
from backend.errors import ServiceUnavailable
from backend.ledger import note as notes
from backend.privatefiles import private_dir, private_file


class LogKeyError(ServiceUnavailable):
    """The log key is missing, unreadable or names another log (503: the log cannot sign
    checkpoints; everything else keeps working)."""


def _write_new(path: Path, signer: notes.Signer) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey + "\n")


def read_key(path: Path) -> notes.Signer:
    private_file(path)  # tightens the mode if someone loosened it
    try:
        return notes.parse_skey(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, notes.NoteError) as exc:
        raise LogKeyError(f"the log key {path} cannot be read: {exc}") from None


def load_log_key(settings: Settings) -> notes.Signer:
    """The current log key; created in development, required in production."""
    path = settings.log_key_path
    if not path.exists():
        if settings.env == "production":
            raise LogKeyError(
                f"no log signing key at {path}: run `honest-metering log-key rotate` once "
                "(and publish the trust root it issues)"
            )
        with contextlib.suppress(FileExistsError):
            _write_new(path, notes.Signer.generate(settings.origin))
    signer = read_key(path)
    if signer.name != settings.origin:
        raise LogKeyError(
            f"the log key {path} is for origin {signer.name!r}, but the log's origin is "
            f"{settings.origin!r} (HM_LOG_ORIGIN / HM_PUBLIC_BASE_URL): a log keeps its "
            "origin; set HM_LOG_ORIGIN to the key's, or start a new log with a new key"
        )
    return signer


def retired_path(settings: Settings, key_id: bytes) -> Path:
    path = settings.log_key_path
    return path.with_name(f"{path.name}.{key_id.hex()}.retired")


def rotate_log_key(settings: Settings) -> tuple[notes.Signer | None, notes.Signer]:
    """Make a new log key; the old one (if any) is kept as ``<file>.<key id>.retired``.
    Returns (old, new)."""
    path = settings.log_key_path
    old = read_key(path) if path.exists() else None
    new = notes.Signer.generate(settings.origin)
    tmp = path.with_name(path.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_new(tmp, new)
    if old is not None:
        os.link(path, retired_path(settings, old.verifier.key_id))
    os.replace(tmp, path)
    return old, new


def retired_keys(settings: Settings) -> list[notes.Signer]:
    path = settings.log_key_path
    if not path.parent.exists():
        return []
    return [read_key(p) for p in sorted(path.parent.glob(path.name + ".*.retired"))]
