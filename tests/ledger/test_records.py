"""The canonical record form: NFC, RFC 8785, salts, ids."""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.ledger import merkle
from backend.ledger.records import (
    SYSTEM,
    Actor,
    InvalidRecord,
    RecordDraft,
    Ref,
    build_envelope,
    canonical_bytes,
    parse_canonical,
    record_id_of,
)
from backend.ledger.records import _SaltPool as SaltPool

AT = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)


def test_envelope_fields_and_time_format() -> None:
    env = build_envelope(
        RecordDraft(
            type="supervision.spot_check",
            subject="91511902MA62Q3T556",
            actor=Actor("regulator", "3"),
            body={"result": "未发现问题"},
            refs=[Ref("supersedes", "ab" * 32)],
        ),
        at=AT.astimezone(timezone(timedelta(hours=8))),
        salt="00" * 16,
    )
    assert env == {
        "v": 1,
        "type": "supervision.spot_check",
        "subject": "91511902MA62Q3T556",
        "at": "2026-11-26T09:30:00.123456Z",
        "actor": {"role": "regulator", "account": "3"},
        "body": {"result": "未发现问题"},
        "refs": [{"rel": "supersedes", "record": "ab" * 32}],
        "salt": "00" * 16,
    }


def test_canonical_bytes_are_rfc8785() -> None:
    # Keys sorted by UTF-16 code units, no whitespace, UTF-8 output, integers plain.
    assert canonical_bytes({"b": 1, "a": [True, None, "é"], "€": 2, "z": -0}) == (
        '{"a":[true,null,"é"],"b":1,"z":0,"€":2}'.encode()
    )


def test_strings_are_nfc_normalised_keys_and_values() -> None:
    decomposed = unicodedata.normalize("NFD", "Café")
    assert decomposed != "Café"
    assert canonical_bytes({decomposed: decomposed}) == canonical_bytes({"Café": "Café"})


@pytest.mark.parametrize(
    "body",
    [{"amount": 1.5}, {"n": 2**53}, {"x": b"bytes"}, {1: "int key"}, {"when": datetime.now(UTC)}],
)
def test_values_that_cannot_be_canonical_are_rejected(body: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidRecord):
        canonical_bytes({"body": body})


def test_naive_time_and_unknown_role_rejected() -> None:
    with pytest.raises(InvalidRecord):
        build_envelope(RecordDraft("t", None, SYSTEM, {}), at=datetime(2026, 1, 1))
    with pytest.raises(InvalidRecord):
        build_envelope(RecordDraft("t", None, Actor("hacker"), {}), at=AT)


def test_salt_makes_equal_content_distinct() -> None:
    d = RecordDraft("t", None, SYSTEM, {"same": 1})
    a, b = build_envelope(d, at=AT), build_envelope(d, at=AT)
    assert len(a["salt"]) == 32 and a["salt"] != b["salt"]
    assert record_id_of(canonical_bytes(a)) != record_id_of(canonical_bytes(b))


def test_salts_are_fresh_across_pool_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def counted(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counted)
    pool = SaltPool(salts_per_read=4)
    salts = [pool.take() for _ in range(10)]
    assert all(len(s) == 16 for s in salts) and len(set(salts)) == 10
    assert reads == [64, 64, 64]  # one read per four salts, not one per salt


def test_salts_are_unique_across_threads() -> None:
    pool = SaltPool(salts_per_read=3)
    with ThreadPoolExecutor(8) as ex:
        salts = list(ex.map(lambda _: pool.take(), range(2000)))
    assert len(set(salts)) == 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_reuses_its_parents_salts() -> None:
    pool = SaltPool(salts_per_read=64)
    pool.take()  # the parent now holds 63 unused salts
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next salt, leave without running pytest's exit
        os.write(w, pool.take())
        os._exit(0)
    os.close(w)
    child = os.read(r, 16)
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != pool.take()


def test_record_id_is_leaf_hash() -> None:
    c = canonical_bytes({"a": 1})
    assert record_id_of(c) == merkle.leaf_hash(c).hex()


def test_parse_rejects_non_canonical_bytes() -> None:
    assert parse_canonical(b'{"a":1}') == {"a": 1}
    with pytest.raises(InvalidRecord):
        parse_canonical(b'{"a": 1}')
    with pytest.raises(InvalidRecord):
        parse_canonical(b"\xff")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_canonical_round_trip(value: object) -> None:
    c = canonical_bytes({"v": value})
    assert canonical_bytes(parse_canonical(c)) == c
