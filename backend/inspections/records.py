"""Inspection directory record kinds and their projections (filled in below)."""

from __future__ import annotations
