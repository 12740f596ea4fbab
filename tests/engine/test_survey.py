"""The national customer survey's results: periods, shares, answers, audited changes, CSV import that
checks every row first and writes nothing when one is wrong."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine import survey
from engine.errors import FormInvalid, InvalidInput
from engine.models import AuditEvent

from .conftest import T0


@pytest.mark.parametrize(("text", "expected"), [
    ("2025", ("2025", date(2025, 1, 1), date(2025, 12, 31))),
    ("2025-h1", ("2025-H1", date(2025, 1, 1), date(2025, 6, 30))),
    ("2025H2", ("2025-H2", date(2025, 7, 1), date(2025, 12, 31))),
    (" 2024-Q1 ", ("2024-Q1", date(2024, 1, 1), date(2024, 3, 31))),
    ("2024-Q4", ("2024-Q4", date(2024, 10, 1), date(2024, 12, 31)))])
def test_periods(text, expected):
    assert survey.parse_period(text) == expected


@pytest.mark.parametrize("text", ["", "25", "2025-H3", "2025-Q5", "1999", "2025-06", "vuosi"])
def test_wrong_periods(text):
    with pytest.raises(InvalidInput):
        survey.parse_period(text)


@pytest.mark.parametrize(("text", "value"), [("71,5", 71.5), ("69", 69.0), (" 100 % ", 100.0), ("0", 0.0),
                                             ("70.04", 70.0)])
def test_percentages(text, value):
    assert survey.parse_percent(text) == value


@pytest.mark.parametrize("text", ["", "-0.1", "100.1", "x", "nan", "inf", "0,69,1"])
def test_wrong_percentages(text):
    with pytest.raises(InvalidInput):
        survey.parse_percent(text)


def test_record_and_correct_is_audited_with_old_and_new(sessions):
    with sessions.begin() as s:
        survey.record(s, "2025-H1", "71,5", "412", by="sanna", now=T0)
    with sessions.begin() as s:
        survey.record(s, "2025-h1", "70,5", "", "korjattu", by="pekka", now=T0 + timedelta(days=1))
        survey.record(s, "2024", "66", None, by="pekka", now=T0 + timedelta(days=1))
    with sessions() as s:
        rows = survey.series(s)
        assert [(r.period, r.positive_percent, r.answers, r.note, r.recorded_by) for r in rows] == [
            ("2024", 66.0, None, None, "pekka"), ("2025-H1", 70.5, None, "korjattu", "pekka")]
        events = s.scalars(select(AuditEvent).where(AuditEvent.stream == "survey").order_by(AuditEvent.seq)).all()
        assert [(e.kind, e.actor) for e in events] == [("survey_result_recorded", "sanna")] + [
            ("survey_result_recorded", "pekka")] * 2
        assert '"old":{"answers":412,"note":null,"positive_percent":71.5}' in events[1].data


def test_record_names_every_wrong_field(sessions):
    with sessions.begin() as s, pytest.raises(FormInvalid) as caught:
        survey.record(s, "2025-H3", "120", "0", by="sanna")
    assert set(caught.value.errors) == {"period", "positive_percent", "answers"}
    with sessions() as s:
        assert survey.series(s) == []


def test_csv_import_records_every_row(sessions):
    text = "\ufeffperiod;positive_percent;answers;note\n2024;66,0;380;\n\n2025-H1;71,5;412;TEM\n"
    with sessions.begin() as s:
        assert survey.import_csv(s, text, by="sanna", now=T0) == 2
    with sessions() as s:
        assert [(r.period, r.positive_percent, r.answers, r.note) for r in survey.series(s)] == [
            ("2024", 66.0, 380, None), ("2025-H1", 71.5, 412, "TEM")]


def test_csv_import_with_one_wrong_row_names_its_lines_and_writes_nothing(sessions):
    text = ("period,positive_percent,answers\n2024,66,380\n2025-H1,171,10\n2025-H2,\"70,1\",x\n"
            "2024,60,\n2026-H3,60,\n")
    with sessions.begin() as s, pytest.raises(FormInvalid) as caught:
        survey.import_csv(s, text, by="sanna", now=T0)
    errors = caught.value.errors
    assert list(errors) == ["line 3", "line 4", "line 5", "line 6"]
    assert "between 0 and 100" in errors["line 3"] and "answers" in errors["line 4"]
    assert "earlier line" in errors["line 5"] and "period" in errors["line 6"]
    with sessions() as s:
        assert survey.series(s) == []
        assert s.scalars(select(AuditEvent).where(AuditEvent.stream == "survey")).all() == []


@pytest.mark.parametrize("text", ["", "year;share\n2024;66\n", "period;positive_percent\n"])
def test_csv_import_without_usable_header_or_rows_is_refused(sessions, text):
    with sessions.begin() as s, pytest.raises(InvalidInput):
        survey.import_csv(s, text, by="sanna")
