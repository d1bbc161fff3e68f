"""Verifiable random draws (双随机、一公开), one module per job.

- ``base``: errors, small pure helpers, and :func:`base.load_draw`;
- ``records``: the ``draw.*`` record kinds' projections onto the ``draw`` tables, and
  the audit of the committed inputs (snapshot, directory, recusals) against their roots;
- ``snapshot``: what a draw commits to: the eligible merchants with their tiers, the
  recusal pairs; reading the committed inputs back;
- ``commit``: create a draw and put its commitment on the ledger;
- ``reveal``: reveal the seed, run the selection, publish the plan; ``reconcile``;
- ``results``: the spot-check results that name a draw (supervision says how to read them);
- ``reading``: what a draw publishes (the page, the list, the snapshot, the recusals).

Imports point down this list (``reading`` below ``commit``, which returns a page).
``docs/draws.md`` is the specification; the pure selection is
:mod:`backend.inspections.selection`.
"""
