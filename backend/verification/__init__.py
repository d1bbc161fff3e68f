"""Verifiers anyone can run without trusting the service: a proof bundle
(:mod:`.bundle`), a shop's credit tier (:mod:`.credit`), a random inspection draw
(:mod:`.draw`).

They read only what they are given, public endpoints and the chain: this package
must never import the service's database, its settings or its tables.
"""
