"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and Ed25519 checkpoint
cosignatures (c2sp.org/tlog-cosignature, signature type 0x04).

A note is text ending in a newline, a blank line, then signature lines
``— <key name> base64(key id || signature)``. A key is known to a verifier by its
*vkey* ``<name>+<hex key id>+base64(type || public key)``; signer keys are stored in
the form of golang.org/x/mod/sumdb/note, ``PRIVATE+KEY+<name>+<hex id>+base64(0x01 ||
seed)``, so other tools can read them.

Pure: text and bytes in and out, no I/O, no settings. Ed25519 comes from
``cryptography``. Verifiers ignore signatures from keys they do not know, and reject a
note whose known key's signature fails, as the spec says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
COSIGNATURE_HEADER = "cosignature/v1\n"
_SIG_PREFIX = EM_DASH + " "


class NoteError(ValueError):
    """A note, key or signature is malformed or does not verify."""


class UnverifiedNote(NoteError):
    """No signature from a known key verifies (or a known key's signature fails)."""


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4] (signed-note, "Signatures")."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not standard base64: {value!r}") from None


@dataclass(frozen=True)
class Verifier:
    """A public key known by name: an Ed25519 log key (0x01) or cosigner key (0x04)."""

    name: str
    sig_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    @property
    def vkey(self) -> str:
        body = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{body}"

    def verify_raw(self, message: bytes, signature: bytes) -> bool:
        return self.sig_type == SIG_ED25519 and self._ed25519_ok(message, signature)

    def _ed25519_ok(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify(self, text: str, sig: Signature) -> int | None:
        """Whether ``sig`` is this key's valid signature on the note text ``text``.

        For a cosigner key: the cosignature's timestamp (``None`` when it fails);
        for a log key: 0 when it holds, ``None`` when not."""
        if self.sig_type == SIG_ED25519:
            return 0 if self._ed25519_ok(text.encode(), sig.data) else None
        if len(sig.data) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", sig.data[:8])
        if timestamp >= 1 << 63:
            return None
        message = cosigned_message(text, timestamp)
        return timestamp if self._ed25519_ok(message, sig.data[8:]) else None


def parse_vkey(vkey: str) -> Verifier:
    """A verifier key ``name+hexid+base64(type || key)``; the id must match."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"a verifier key is name+keyid+key, got {vkey!r}")
    name, hex_id, body = parts
    _check_name(name)
    raw = _b64decode(body, "the verifier key's key material")
    if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise NoteError(
            f"verifier key {vkey!r}: only Ed25519 (type 0x01) and Ed25519 cosigner (0x04) "
            "keys of 32 bytes are supported"
        )
    v = Verifier(name, raw[0], raw[1:])
    if v.key_id.hex() != hex_id.lower():
        raise NoteError(
            f"verifier key {vkey!r}: key id {hex_id} does not match the key "
            f"(expected {v.key_id.hex()})"
        )
    return v


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its name and signature type (0x01 log, 0x04 cosigner)."""

    name: str
    seed: bytes = field(repr=False)
    sig_type: int = SIG_ED25519

    @classmethod
    def generate(cls, name: str, sig_type: int = SIG_ED25519) -> Signer:
        key = Ed25519PrivateKey.generate()
        return cls(_check_name(name), key.private_bytes_raw(), sig_type)

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.sig_type, self._key().public_key().public_bytes_raw())

    @property
    def skey(self) -> str:
        """The private key as text (golang.org/x/mod/sumdb/note form; for a cosigner key
        the type byte is 0x04)."""
        body = base64.b64encode(bytes([self.sig_type]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{body}"

    def sign_raw(self, message: bytes) -> bytes:
        """A bare Ed25519 signature (for documents that are not notes, e.g. the trust
        root, which domain-separates its message itself)."""
        return self._key().sign(message)

    def sign(self, text: str, *, timestamp: int | None = None) -> Signature:
        """A signature line's content on the note text: a plain Ed25519 signature, or for
        a cosigner key a timestamped cosignature (``timestamp`` in POSIX seconds)."""
        check_text(text)
        kid = self.verifier.key_id
        if self.sig_type == SIG_ED25519:
            return Signature(self.name, kid, self._key().sign(text.encode()))
        if timestamp is None or not 0 < timestamp < 1 << 63:
            raise NoteError("a cosignature needs a timestamp (POSIX seconds, not zero)")
        sig = self._key().sign(cosigned_message(text, timestamp))
        return Signature(self.name, kid, struct.pack(">Q", timestamp) + sig)


def parse_skey(skey: str) -> Signer:
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("a signer key is PRIVATE+KEY+name+keyid+key")
    _, _, name, hex_id, body = parts
    _check_name(name)
    raw = _b64decode(body, "the signer key's key material")
    if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise NoteError("only Ed25519 signer keys (a type byte and a 32-byte seed) are supported")
    signer = Signer(name, raw[1:], raw[0])
    if signer.verifier.key_id.hex() != hex_id.lower():
        raise NoteError(f"signer key for {name}: key id {hex_id} does not match the key")
    return signer


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs: header line, time line, checkpoint text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    data: bytes

    @property
    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(self.key_id + self.data).decode()}\n"


def parse_signature_line(line: str) -> Signature:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"a signature line starts with '{_SIG_PREFIX}': {line!r}")
    rest = line[len(_SIG_PREFIX):].removesuffix("\n")
    name, sep, b64 = rest.partition(" ")
    if not sep:
        raise NoteError(f"a signature line is '— name signature': {line!r}")
    _check_name(name)
    raw = _b64decode(b64, "the signature")
    if len(raw) < 5:
        raise NoteError(f"signature of {name} is too short")
    return Signature(name, raw[:4], raw[4:])


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text has no control characters other than newline")


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def format(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)

    def with_signatures(self, more: list[Signature]) -> Note:
        """This note with ``more`` added (a signature from the same name and id replaces
        none: duplicates are dropped)."""
        have = {(s.name, s.key_id, s.data) for s in self.signatures}
        extra = tuple(s for s in more if (s.name, s.key_id, s.data) not in have)
        return Note(self.text, self.signatures + extra)


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signatures (nothing verified yet)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a signed note is UTF-8 text") from None
    if not data.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in data):
        raise NoteError("a signed note has no control characters other than newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("a signed note has a blank line between its text and its signatures")
    text, sig_block = data[: split + 1], data[split + 2:]
    lines = sig_block.splitlines(keepends=True)
    if not lines:
        raise NoteError("a signed note has at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
    return Note(text, tuple(parse_signature_line(line) for line in lines))


def verified_by(note: Note, verifiers: list[Verifier]) -> dict[Verifier, int]:
    """The known keys whose signatures on ``note`` verify (value: the cosignature's
    timestamp, 0 for a plain signature). Unknown keys are ignored; a known key whose
    signature fails raises :class:`UnverifiedNote` (the note is malformed)."""
    known = {(v.name, v.key_id): v for v in verifiers}
    good: dict[Verifier, int] = {}
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        ts = v.verify(note.text, sig)
        if ts is None:
            raise UnverifiedNote(
                f"the signature of {sig.name} (key {sig.key_id.hex()}) does not verify"
            )
        good[v] = ts
    return good


def open_note(data: str | bytes, verifiers: list[Verifier]) -> tuple[Note, dict[Verifier, int]]:
    """Parse a note and verify it: at least one known key must have signed it."""
    note = parse_note(data)
    good = verified_by(note, verifiers)
    if not good:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise UnverifiedNote(f"the note carries no signature by a known key (known: {names})")
    return note, good
