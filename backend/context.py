"""The running service's shared objects: settings, database, ledger client.

One ``AppContext`` per process. The ledger client is opened lazily and may be
unavailable (a node that is down): writes never wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import text

from backend.config import Settings
from backend.db import Database
from backend.errors import LedgerUnavailable
from backend.ledger.chain import LedgerClient, LedgerError
from backend.ledger.models import LedgerState
from backend.privatefiles import private_dir

T = TypeVar("T")


@dataclass
class AppContext:
    settings: Settings
    db: Database
    _ledger: LedgerClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Connecting to a node (and deploying) can take as long as the node makes it: under
    # a lock of its own, so that a hung node never holds up ``local`` (group commit,
    # caches, the readiness probes).
    _ledger_lock: threading.Lock = field(default_factory=threading.Lock)
    _locals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> AppContext:
        private_dir(settings.data_dir)
        db = Database(settings.db_url)
        if migrate:
            db.migrate()
        return cls(settings=settings, db=db)

    def ledger(self) -> LedgerClient:
        """The ledger client with its contract address resolved (deploying once if needed)."""
        with self._ledger_lock:
            if self._ledger is None:
                client = LedgerClient.from_settings(self.settings)
                try:
                    client.contract_address = self._resolve_contract(client)
                except BaseException:
                    client.close()
                    raise
                self._ledger = client
            return self._ledger

    def ledger_if_open(self) -> LedgerClient | None:
        return self._ledger

    def _resolve_contract(self, client: LedgerClient) -> str:
        if self.settings.contract_address:
            address = self.settings.contract_address
            if not client.has_code(address):
                raise LedgerError(f"HM_CONTRACT_ADDRESS {address} has no contract code")
            return address
        key = f"contract:{client.chain_id}"
        # The write transaction serialises deployers: only the first one deploys.
        with self.db.session() as s:
            if not self.db.is_sqlite:
                s.execute(text("SELECT pg_advisory_xact_lock(7340001)"))
            row = s.get(LedgerState, key)
            if row is not None and client.has_code(row.value):
                return row.value
            if self.settings.env == "production":
                raise LedgerError(
                    "no MeteringLedger contract is known for chain "
                    f"{client.chain_id}: run `honest-metering deploy-contract` and set "
                    "HM_CONTRACT_ADDRESS"
                )
            address = client.deploy(reveal_delay_blocks=self.settings.draw_reveal_delay_blocks)
            if row is None:
                s.add(LedgerState(key=key, value=address))
            else:
                row.value = address
            s.commit()
            return address

    def require_ledger(self) -> LedgerClient:
        try:
            return self.ledger()
        except LedgerUnavailable:
            raise
        except (OSError, LedgerError) as exc:
            raise LedgerUnavailable(f"ledger unavailable: {exc}") from None

    def local(self, name: str, make: Callable[[], T]) -> T:
        """This process's object called ``name``, made by ``make`` on first use: a
        cache, a group commit. Closed (if it has ``close``) with the context."""
        with self._lock:
            if name not in self._locals:
                self._locals[name] = make()
            return self._locals[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        # Like the ledger client and the engines, locals are made anew if the context
        # is used again after closing (an app whose lifespan runs more than once).
        with self._lock:
            closing = list(self._locals.values())
            self._locals.clear()
        for obj in closing:
            close = getattr(obj, "close", None)
            if callable(close):
                close()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        self.db.dispose()
