"""The data dir and the SQLite databases in it are readable by the service's user only.

They hold contact details, password hashes, the token secret and the dev signing key,
so the data dir is made (or, if group or others can read it, tightened) to mode 0700,
and each SQLite file is created with mode 0600 before SQLite opens it (its ``-wal``
and ``-shm`` files take the database file's mode). Whatever the umask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700); parents as the umask says."""
    path.mkdir(parents=True, exist_ok=True)
    _tighten(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (then tighten it to 0600);
    its directory is made with :func:`private_dir`. An empty file is a valid SQLite
    database."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    _tighten(path, 0o600)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side, 0o600)
    return path


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, mode)
        log.info("%s was readable by others; its mode is now %o", path, mode)
