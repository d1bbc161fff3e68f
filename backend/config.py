"""Settings: the one place that reads the environment (prefix ``HM_``).

Nothing else in the code base touches ``os.environ``. Secrets are ``SecretStr``
and are never logged; outside development they must be given explicitly.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# An http(s) URL with a host, nothing that could end a CSP directive or an HTML attribute.
_RPC_NODE_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s;,'\"<>]*)?$")


class WitnessConfig(BaseModel):
    """One witness the log sends its checkpoints to (c2sp.org/tlog-witness)."""

    # At most 64 characters: the service keeps each witness's state under its name in
    # ledger_state keys of at most 100 (backend/ledger/witnessing.py).
    name: str = Field(min_length=1, max_length=64, description="the witness's key name")
    key: str = Field(
        pattern=r"^[^+\s]+\+[0-9a-f]{8}\+B[A-Za-z0-9+/]{43}$",
        description="its cosigner verifier key (C2SP vkey of type 0x04: name+keyid+base64)",
    )
    url: str = Field(
        pattern=r"^https?://",
        description="its submission prefix: add-checkpoint is POSTed below it",
    )

    @model_validator(mode="after")
    def _key_names_the_witness(self) -> WitnessConfig:
        if self.key.split("+", 1)[0] != self.name:
            raise ValueError(f"witness {self.name!r}: its key is for {self.key.split('+', 1)[0]!r}")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HM_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data dir"
    )
    ledger_url: str | None = Field(
        default=None, description="Ethereum JSON-RPC URL; default: embedded chain in the data dir"
    )
    # Signing key for a JSON-RPC node: a raw key, or an encrypted keystore file
    # and its password. The embedded chain generates its own key in the data dir.
    ledger_key: SecretStr | None = None
    ledger_keystore: Path | None = None
    ledger_keystore_password: SecretStr | None = None
    contract_address: str | None = Field(
        default=None, description="MeteringLedger address; default: deploy once and remember"
    )
    chain_poll_timeout_s: float = 30.0
    # Priority fee (tip) per gas of the service's transactions; 0 on a zero-gas-price
    # consortium chain (Besu/geth with min gas price 0), where anchorers need no funds.
    # On a chain without EIP-1559 fees it is the minimum legacy gas price.
    ledger_priority_fee_wei: int = Field(default=10**9, ge=0)
    ledger_public_url: str | None = Field(
        default=None,
        description="JSON-RPC URL proof bundles name for verifiers; default: this service's "
        "/rpc for the embedded chain, none for an external node",
    )

    # The log's identity in its signed checkpoints and tiles (c2sp.org/tlog-checkpoint
    # origin line) and the Ed25519 key that signs them (a file kept with mode 0600;
    # development generates it, production needs `honest-metering log-key rotate`).
    log_origin: str | None = Field(
        default=None,
        description="checkpoint origin, a schema-less URL; default: the public base URL "
        "without its scheme",
    )
    log_key_file: Path | None = Field(
        default=None, description="the log's signing key; default: log-signing.key in the data dir"
    )

    # Witnesses (JSON list of {"name", "key", "url"}) and how many of them must cosign a
    # checkpoint for verifiers to call it witnessed (default: a majority). Both go into
    # the trust root (backend/ledger/trustroot.py).
    witnesses: list[WitnessConfig] = Field(default_factory=list)
    witness_quorum: int | None = Field(default=None, ge=0)
    # JSON-RPC nodes of the pinned chain a visitor of /verify may choose to check anchors
    # against (JSON list of URLs). Their origins are added to the pages' CSP connect-src;
    # any other node is refused by the browser, and the page says so in Chinese. The
    # site's own /rpc (or HM_LEDGER_PUBLIC_URL) is only the fallback.
    verify_rpc_nodes: list[str] = Field(default_factory=list, max_length=20)

    anchor_max_pending: int = Field(default=1000, ge=1)
    anchor_interval_s: float = Field(default=5.0, gt=0)
    anchor_enabled: bool = True
    # The daily credit re-rating sweep (backend/credit/service.py) in this process.
    rerate_enabled: bool = True
    draw_reveal_delay_blocks: int = Field(default=3, ge=1, le=200)
    # Who publishes new spot-check rates per tier (backend/credit/frequencies.py):
    # "two_person" (a staff proposal approved by a second staff account), "admin"
    # (an admin at once; a regulator's proposal needs an admin's approval) or
    # "regulator" (any staff account at once).
    rate_publish: Literal["two_person", "admin", "regulator"] = "two_person"

    secret_key: SecretStr | None = None
    token_ttl_s: int = Field(default=8 * 3600, ge=60)
    # Requests that hash a password (login, registration, password change; Argon2, 64 MiB
    # each) run this many at a time per process; the others wait on the event loop if
    # their turn is expected within 10 s, else 503 ServerBusy with Retry-After at once
    # (backend/accounts/deps.py).
    password_hash_concurrency: int = Field(default=2, ge=1)
    demo_on_first_start: bool = True
    public_base_url: str | None = Field(
        default=None,
        description="the address the public reaches this service at (QR codes, proof "
        "bundles, cookies); default: http://HOST:PORT of this process",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_json: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Request bodies: ordinary API and form requests, and the bulk upload endpoints
    # (backend/ops/limits.py BULK_UPLOAD_PATHS). Checked on the bytes received, so a
    # body without Content-Length (chunked) is limited too.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_bulk_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # A request body must arrive completely within this many seconds of the app first
    # reading it (408 otherwise), so a client trickling a body cannot hold a request open.
    body_read_timeout_s: float = Field(default=60.0, gt=0)
    # A request's headers must arrive within this many seconds of its first byte (of the
    # connection, for its first request), 408 otherwise: a client trickling headers
    # (slowloris) cannot hold a connection open (backend/ops/header_timeout.py).
    header_read_timeout_s: float = Field(default=10.0, gt=0)
    # Idle keep-alive connections are closed after this many seconds.
    timeout_keep_alive_s: int = Field(default=5, ge=1)
    # When set, GET /metrics needs ``Authorization: Bearer <token>``.
    metrics_token: SecretStr | None = None
    # POST /rpc (the embedded chain's read-only JSON-RPC): calls a minute per client
    # address, a batch counting as its calls; a client may spend a minute's calls at once.
    # Counted in the serving process's memory (backend/ledger/rpc.py). 0: no limit.
    rpc_calls_per_minute: int = Field(default=600, ge=0)
    # POST /rpc reads run in this many worker processes on a snapshot of the chain, never
    # in the serving process nor under the lock anchoring and draws use (backend/ledger/
    # reader.py). A call running longer than rpc_call_timeout_s is cut off (its worker is
    # killed and replaced); eth_call and eth_estimateGas may ask for at most rpc_gas_cap
    # gas (py-evm runs about 1M gas/s of cheap opcodes here: the cap ends in about the
    # time limit; geth's RPCGasCap is 50M, its RPCEVMTimeout 5 s).
    rpc_read_workers: int = Field(default=2, ge=1, le=64)
    rpc_call_timeout_s: float = Field(default=5.0, gt=0, le=600)
    rpc_gas_cap: int = Field(default=5_000_000, ge=100_000)
    # GET /readyz answers within this many seconds: a check with no answer by then
    # (a hung ledger node or database) reports "down" instead of holding the probe.
    readyz_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # Merchant lookups are served from views kept in the database (backend/merchants/
    # views.py); every this many seconds one worker rebuilds those gone stale. 0: never
    # in the background (each is then rebuilt by the first lookup that finds it stale).
    view_warm_interval_s: float = Field(default=300.0, ge=0)
    # Python's GIL switch interval in a serving process (sys.setswitchinterval; Python's
    # own default is 0.005). A thread that gets a database reply waits up to this long
    # for the event loop to let it run; the group commit writer does that a dozen times
    # a batch while holding the log lock, so a shorter interval means more writes/s.
    gil_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)

    @model_validator(mode="after")
    def _verify_nodes_are_urls(self) -> Settings:
        for url in self.verify_rpc_nodes:
            if not _RPC_NODE_RE.match(url):
                raise ValueError(
                    f"HM_VERIFY_RPC_NODES: {url!r} is not an http(s) URL without spaces, "
                    "quotes, semicolons or commas"
                )
        return self

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production":
            missing = []
            if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
                missing.append("HM_SECRET_KEY (at least 32 characters)")
            if self.database_url is None:
                missing.append("HM_DATABASE_URL")
            if self.ledger_url is not None and not (self.ledger_key or self.ledger_keystore):
                missing.append("HM_LEDGER_KEY or HM_LEDGER_KEYSTORE")
            if missing:
                raise ValueError("production settings missing: " + ", ".join(missing))
        return self

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the libpq-style scheme people copy from their provider.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'honest-metering.sqlite3').resolve()}"

    @property
    def base_url(self) -> str:
        """Where the public reaches this service, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        """The log's checkpoint origin."""
        if self.log_origin:
            return self.log_origin
        return self.base_url.split("://", 1)[-1]

    @property
    def quorum(self) -> int:
        """k of the n witnesses (default: a majority; 0 without witnesses)."""
        if self.witness_quorum is not None:
            return self.witness_quorum
        return len(self.witnesses) // 2 + 1 if self.witnesses else 0

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file or self.data_dir / "log-signing.key"

    @property
    def embedded_chain(self) -> bool:
        return self.ledger_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")


def get_settings() -> Settings:
    return Settings()
