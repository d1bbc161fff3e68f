"""Tables of the record log and its checkpoints.

Rows here are appended, never updated, with one exception: ``log_head`` holds
the tree size and is the lock that serialises appends, so leaf indexes stay
dense and unique under concurrent writers in any number of processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String
from sqlmodel import Field, SQLModel


class LogHead(SQLModel, table=True):
    __tablename__ = "log_head"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class LogLeaf(SQLModel, table=True):
    """One record of the log: its canonical bytes at a dense leaf index."""

    __tablename__ = "log_leaf"
    # A subject's records in log order; its newest record is one index probe (the
    # version stamp of its cached public view, backend.shops.views).
    __table_args__ = (Index("ix_log_leaf_subject_leaf_index", "subject", "leaf_index"),)

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    record_type: str = Field(max_length=64, index=True)
    subject: str | None = Field(default=None, max_length=18)
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    appended_at: datetime


class MerkleNode(SQLModel, table=True):
    """Hash of the perfect subtree covering leaves [idx << level, (idx + 1) << level)."""

    __tablename__ = "merkle_node"

    level: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class Checkpoint(SQLModel, table=True):
    """A tree head anchored on the ledger (mirrors the contract's checkpoint array)."""

    __tablename__ = "checkpoint"

    seq: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False),
        description="index in the contract's checkpoint array",
    )
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    root: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    tx_hash: str = Field(max_length=66)
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    contract_address: str = Field(max_length=42)
    anchored_at: datetime
    gas_used: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LedgerState(SQLModel, table=True):
    """Small key/value facts about the ledger (deployed contract address per chain)."""

    __tablename__ = "ledger_state"

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=2000)


class SubjectIndexEntry(SQLModel, table=True):
    """The subject index (backend/ledger/subject_index.py) as rows: one per record that
    names a subject, numbered per subject in log order, with the ids digest of that
    subject's records up to and including it. A derived table: written by the anchorer
    when it appends a ``ledger.subject_index`` record, for every record before it, and
    audited against the log (``backend/ledger/index_store.py``)."""

    __tablename__ = "subject_index_entry"

    subject: str = Field(max_length=18, primary_key=True)
    seq: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False),
        description="1 for the subject's first record, 2 for its second, …",
    )
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    record_id: str = Field(sa_column=Column(String(64), nullable=False))
    ids_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
