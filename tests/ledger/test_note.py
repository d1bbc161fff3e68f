"""Signed notes, checkpoints and cosignatures against the C2SP specs' published examples."""

from __future__ import annotations

import base64

import pytest

from backend.ledger import checkpoint as cps
from backend.ledger import note as notes

# c2sp.org/signed-note, "Verifier keys" → "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3"
    "mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# golang.org/x/mod/sumdb/note's documented example (Ed25519 is deterministic: signing the
# same text with the same key must give exactly this line).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_spec_example_vkey_and_note_verify() -> None:
    v = notes.parse_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo" and v.key_id.hex() == "530d903a"
    assert v.vkey == SPEC_VKEY
    note, good = notes.open_note(SPEC_NOTE, [v])
    assert note.text == "This is an example message.\n"
    assert good == {v: 0}


def test_go_reference_key_signs_byte_for_byte() -> None:
    signer = notes.parse_skey(GO_SKEY)
    assert signer.skey == GO_SKEY
    assert signer.verifier.vkey == GO_VKEY
    sig = signer.sign(GO_TEXT)
    assert sig.line == GO_SIG_LINE
    assert notes.Note(GO_TEXT, (sig,)).format() == GO_TEXT + "\n" + GO_SIG_LINE
    notes.open_note(GO_TEXT + "\n" + GO_SIG_LINE, [notes.parse_vkey(GO_VKEY)])


def test_tampered_text_or_signature_is_rejected() -> None:
    v = notes.parse_vkey(SPEC_VKEY)
    with pytest.raises(notes.UnverifiedNote, match="does not verify"):
        notes.open_note(SPEC_NOTE.replace("example message", "example massage"), [v])
    raw = bytearray(base64.b64decode(SPEC_NOTE.split(" ")[-1]))
    raw[10] ^= 1
    bad = SPEC_NOTE.rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(notes.UnverifiedNote):
        notes.open_note(bad, [v])


def test_unknown_keys_are_ignored_but_one_known_key_is_needed() -> None:
    other = notes.Signer.generate("example.com/foo")  # same name, other key id
    note = notes.parse_note(SPEC_NOTE)
    assert notes.verified_by(note, [other.verifier]) == {}
    with pytest.raises(notes.UnverifiedNote, match="no signature by a known key"):
        notes.open_note(SPEC_NOTE, [other.verifier])


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n\u2014 a AAAAAAA=\n",
        "text\n\n",
        "text\n\n- a AAAAAAAA\n",
        "text\n\n\u2014 a not-base64!\n",
        "te\x01xt\n\n\u2014 a AAAAAAAA\n",
        "text\n\n\u2014 a AAAAAAAA",
    ],
)
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_note(bad)


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong id
        "example.com/foo+530d903a",
        "example.com/foo+530d903a+AgkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # type 2
        "bad name+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_vkey(vkey)


def test_spec_checkpoint_text_parses() -> None:
    # c2sp.org/tlog-checkpoint's example body.
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    head = cps.parse_checkpoint_text(text)
    assert (head.origin, head.size) == ("example.com/behind-the-sofa", 20852163)
    assert head.text == text
    for bad in (
        text.replace("20852163", "020852163"),
        text + "extension\n",
        text.replace("CsUY", "!sUY"),
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    ):
        with pytest.raises(cps.CheckpointError):
            cps.parse_checkpoint_text(bad)


def test_cosignature_format_and_key_id() -> None:
    """tlog-cosignature: key id with type 0x04, signature = u64 timestamp || Ed25519 over
    'cosignature/v1\\ntime T\\n' + checkpoint text."""
    w = notes.Signer.generate("witness.example.com/w1", notes.SIG_COSIGNATURE_V1)
    v = w.verifier
    assert v.key_id == notes.key_id("witness.example.com/w1", 0x04, v.public)
    assert v.vkey.split("+")[2].startswith("B")  # base64 of 0x04 ...
    head = cps.TreeHead("example.com/log", 5, bytes(32))
    sig = w.sign(head.text, timestamp=1679315147)
    assert sig.data[:8] == (1679315147).to_bytes(8, "big")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(v.public).verify(
        sig.data[8:], b"cosignature/v1\ntime 1679315147\n" + head.text.encode()
    )
    log = notes.Signer.generate("example.com/log")
    signed = cps.sign_checkpoint(head, log).with_signatures([sig])
    opened = cps.open_checkpoint(
        signed.format(), origin="example.com/log", log_keys=[log.verifier], witnesses=[v]
    )
    assert opened.head == head and opened.cosigners == {v: 1679315147}
    # A plain log key cannot stand in for a cosigner key (different key id).
    plain = notes.Verifier(v.name, notes.SIG_ED25519, v.public)
    assert notes.verified_by(signed, [plain]) == {}
    with pytest.raises(notes.NoteError, match="timestamp"):
        w.sign(head.text)


def test_checkpoint_of_another_origin_or_key_is_refused() -> None:
    head = cps.TreeHead("example.com/log", 5, bytes(32))
    log = notes.Signer.generate("example.com/log")
    text = cps.sign_checkpoint(head, log).format()
    with pytest.raises(cps.CheckpointError, match="expected 'example.com/other'"):
        cps.open_checkpoint(text, origin="example.com/other", log_keys=[log.verifier])
    other = notes.Signer.generate("example.com/log")
    with pytest.raises(notes.UnverifiedNote, match="not signed by the log key"):
        cps.open_checkpoint(text, origin="example.com/log", log_keys=[other.verifier])
