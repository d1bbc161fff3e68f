"""Password hashing, signed tokens and CSRF tokens.

Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters).
Tokens are ``v1.<payload>.<mac>``: a base64url JSON payload and an
HMAC-SHA256 over it with a key derived from ``settings.secret_key``. A token
names its account, role, kind (``access`` for the API, ``session`` for the
browser cookie), expiry, a short fingerprint of the account's password hash
(changing a password ends every token issued before), the account's token
version (``log out everywhere`` raises it) and a random ``jti`` (a logout puts
it on the revoked list).

In development and test a secret is generated once and kept in the data dir
with mode 0600; production refuses to start without ``HM_SECRET_KEY``
(backend/config.py). This module never logs a secret, a password or a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.config import Settings
from backend.privatefiles import private_dir

TOKEN_VERSION = "v1"
SECRET_FILE = "secret_key"
TokenKind = Literal["access", "session"]


class TokenInvalid(ValueError):
    """A token that is malformed, forged, of the wrong kind or expired."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


# --- passwords ---------------------------------------------------------------


@lru_cache(maxsize=2)
def password_hasher(env: str) -> PasswordHasher:
    """RFC 9106 low-memory Argon2id; in tests the cheapest profile, because a
    test suite that registers hundreds of merchants must not spend minutes
    hashing. A hash records its own parameters, so either verifies anywhere,
    and ``needs_rehash`` upgrades a cheap hash on the next login."""
    if env == "test":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


def hash_password(password: str, *, env: str) -> str:
    return password_hasher(env).hash(password)


def verify_password(password_hash: str, password: str, *, env: str) -> bool:
    try:
        return password_hasher(env).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, env: str) -> bool:
    try:
        return password_hasher(env).check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=2)
def dummy_hash(env: str) -> str:
    """A hash to verify against when the account does not exist, so that an
    unknown user name costs as much time as a wrong password."""
    return hash_password(secrets.token_urlsafe(16), env=env)


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


# --- the secret --------------------------------------------------------------

_secret_lock = threading.Lock()


def load_secret(settings: Settings) -> bytes:
    """The token-signing secret: ``HM_SECRET_KEY``, or (development and test
    only) a random one generated once in the data dir with mode 0600."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if settings.env == "production":  # config.py already refuses this; belt and braces
        raise RuntimeError("HM_SECRET_KEY must be set in production")
    return _secret_file(settings.data_dir.resolve())


@lru_cache(maxsize=8)
def _secret_file(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    with _secret_lock:
        private_dir(data_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_text().strip()
            if len(value) < 32:
                raise RuntimeError(
                    f"{path} holds a secret shorter than 32 characters; delete it to "
                    "generate a new one (this signs everyone out)"
                ) from None
            return value.encode()
        value = secrets.token_hex(32)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value.encode()


def _subkey(secret: bytes, purpose: str) -> bytes:
    # Separate keys per purpose: a CSRF token can never pass as a token MAC.
    return hmac.new(secret, f"honest-metering/{purpose}".encode(), hashlib.sha256).digest()


# --- tokens ------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    account_id: int
    role: str
    kind: TokenKind
    issued_at: int
    expires_at: int
    password_fp: str
    jti: str
    version: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(
    secret: bytes,
    *,
    account_id: int,
    role: str,
    password_hash: str,
    kind: TokenKind,
    now: datetime,
    ttl_s: int,
    version: int = 0,
) -> tuple[str, TokenClaims]:
    iat = int(now.timestamp())
    claims = TokenClaims(
        account_id=account_id,
        role=role,
        kind=kind,
        issued_at=iat,
        expires_at=iat + ttl_s,
        password_fp=password_fingerprint(password_hash),
        jti=secrets.token_hex(12),
        version=version,
    )
    payload = {
        "sub": str(account_id),
        "role": role,
        "kind": kind,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "pfp": claims.password_fp,
        "jti": claims.jti,
        "ver": claims.version,
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{TOKEN_VERSION}.{body}"
    mac = hmac.new(_subkey(secret, "token"), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}", claims


def decode_token(secret: bytes, token: str, *, kind: TokenKind, now: datetime) -> TokenClaims:
    """Check the MAC, the kind and the expiry; raise :class:`TokenInvalid`."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        raise TokenInvalid("malformed token")
    signed = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(_subkey(secret, "token"), signed.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        if not hmac.compare_digest(expected, given):
            raise TokenInvalid("token signature does not match")
        payload: dict[str, Any] = json.loads(_unb64(parts[1]))
        claims = TokenClaims(
            account_id=int(payload["sub"]),
            role=str(payload["role"]),
            kind=payload["kind"],
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            password_fp=str(payload["pfp"]),
            jti=str(payload["jti"]),
            # Tokens issued before versions existed are version 0.
            version=int(payload.get("ver", 0)),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, TokenInvalid):
            raise
        raise TokenInvalid("malformed token") from None
    if claims.kind != kind:
        raise TokenInvalid(f"a {claims.kind} token cannot be used here")
    if now.timestamp() >= claims.expires_at:
        raise TokenInvalid("token has expired; log in again", expired=True)
    return claims


def csrf_token(secret: bytes, session_jti: str) -> str:
    """The CSRF token bound to one browser session (its token's ``jti``)."""
    return hmac.new(_subkey(secret, "csrf"), session_jti.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: bytes, session_jti: str, given: str | None) -> bool:
    if not given:
        return False
    # As bytes: compare_digest raises TypeError for a str with non-ASCII characters, and
    # ``given`` is whatever a client put in a header or a form field.
    expected = csrf_token(secret, session_jti).encode()
    return hmac.compare_digest(expected, given.encode("utf-8", "replace"))
