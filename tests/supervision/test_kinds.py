"""Each supervision outcome kind is declared once (``backend/supervision/kinds.py``),
and what reads the declarations gets what the API, the log and the bulk format say."""

from __future__ import annotations

from typing import get_args

import pytest

import backend.domains  # noqa: F401  (every projection declared)
from backend.ledger import projection
from backend.ledger.kinds import FormField, RecordKind, Telling, by_type
from backend.supervision import kinds, records
from backend.supervision.models import RECORD_TYPE_PREFIX, Kind


def test_every_kind_of_the_api_is_declared_with_its_input() -> None:
    assert tuple(kinds.OUTCOMES) == get_args(Kind)
    for name, kind in kinds.OUTCOMES.items():
        assert kind.name == name and kind.type == RECORD_TYPE_PREFIX + name
        # The declared body schema is the API input whose discriminator is this kind.
        assert kind.input.model_fields["kind"].annotation.__args__ == (name,)  # type: ignore[union-attr]
        assert kind.label and kind.form_label and kind.section


def test_the_bulk_columns_are_the_inputs_fields_in_the_documented_order() -> None:
    # The bulk format (docs/api.md, the form's hint) must not change with the declarations.
    assert kinds.CSV_COLUMNS == (
        "kind", "uscc", "supersedes", "correction_reason", "result", "checked_on",
        "authority", "draw_id", "evidence_sha256", "decision_no", "decided_on", "amount_fen",
        "lower_amount", "circulated_criticism", "special_sector", "performed", "complaint_id",
        "verified_on", "summary", "action", "on", "reason", "closes", "instrument_type",
        "serial", "certificate_no", "valid_until", "revokes",
    )


@pytest.mark.parametrize("name", list(kinds.OUTCOMES))
def test_every_form_field_fills_a_field_of_the_kinds_input(name: str) -> None:
    kind = kinds.OUTCOMES[name]
    fields = kinds.form_fields(kind)
    assert fields[0] == kinds.MERCHANT_FIELD
    assert (fields[-2:] == list(kinds.CORRECTION_FIELDS)) == kind.correctable
    for f in fields:
        assert (f.into or f.name) in kind.input.model_fields, (name, f.name)
    assert len({f.name for f in fields}) == len(fields)


def test_the_projection_covers_the_kinds_its_declarations_give_it() -> None:
    here = {k.type for k in kinds.KINDS if k.projected_by == kinds.OUTCOME_TABLE}
    assert here == records.TYPES
    assert kinds.DEMONSTRATION.type not in here
    # The awards are projected by the table the declaration names (backend/pledges).
    owners = {p.name for p in projection.all_projections() if kinds.DEMONSTRATION.type in p.types}
    assert kinds.DEMONSTRATION.projected_by in owners


def test_kinds_without_checks_say_where_they_are_written() -> None:
    for kind in kinds.KINDS:
        assert (kind.check is None) == bool(kind.elsewhere), kind.name


def test_a_record_type_declared_twice_is_refused() -> None:
    one = RecordKind(type="x.y", label="甲", section="other", tell=lambda r: Telling("甲"))
    with pytest.raises(AssertionError, match="declared twice"):
        by_type((one,), (one,))


def test_form_fields_are_frozen_declarations() -> None:
    f = FormField("a", "甲")
    with pytest.raises(AttributeError):
        f.name = "b"  # type: ignore[misc]
