"""The providers registry: CRUD with the business-ID check, the providers' own feedback, the `provider`
form field through `runtime.complete_task` (in one process and saved and reloaded), the CLI, and the
per-provider report from a small scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import deploy as deploy_mod
from engine import forms, providers, runtime
from engine.access import Reader
from engine.cli import main
from engine.config import Settings
from engine.errors import FormInvalid, InvalidModel, ProviderNotFound
from engine.models import AuditEvent, Task, TaskStatus

from .conftest import MODELS, T0

TRAINER = {"name": "Koulutus Oy", "business_id": "1234567-1", "kind": "training", "contact_person": "Kaisa Koulu",
           "email": "kaisa@koulutus.fi", "phone": "+358 40 123 4567"}
CONSULT = {"name": "Konsultointi Ab", "business_id": "2345678-0", "kind": "consultant"}
PARTNER = {"name": "Finnvera", "business_id": "0112233-3", "kind": "partner"}


def _add(sessions, data, by="esimies"):
    with sessions.begin() as s:
        return providers.create_provider(s, data, by=by, now=T0).id


# ---------------------------------------------------------------------------------------------
# Registry


def test_create_update_list_and_audit(sessions):
    trainer = _add(sessions, TRAINER)
    _add(sessions, CONSULT)
    with sessions.begin() as s:
        p = providers.get_provider(s, trainer)
        assert (p.name, p.business_id, p.kind, p.email, p.active) == ("Koulutus Oy", "1234567-1", "training",
                                                                      "kaisa@koulutus.fi", True)
        providers.update_provider(s, trainer, {**TRAINER, "name": "Koulutus Oyj", "active": False}, by="anna",
                                  now=T0 + timedelta(days=1))
    with sessions.begin() as s:
        assert [p.name for p in providers.list_providers(s)] == ["Konsultointi Ab", "Koulutus Oyj"]
        assert [p.name for p in providers.list_providers(s, active_only=True)] == ["Konsultointi Ab"]
        assert [p.name for p in providers.list_providers(s, "oyj")] == ["Koulutus Oyj"]
        assert [p.name for p in providers.list_providers(s, "2345")] == ["Konsultointi Ab"]
        assert [p.name for p in providers.list_providers(s, kind="training")] == ["Koulutus Oyj"]
        assert [p.name for p in providers.list_providers(s, "%")] == []
        events = [json.loads(e.data) for e in s.scalars(select(AuditEvent).where(AuditEvent.stream == "providers")
                                                        .order_by(AuditEvent.seq))]
        assert [e["action"] for e in events] == ["created", "created", "updated"]
        assert events[2]["changes"] == {"name": ["Koulutus Oy", "Koulutus Oyj"], "active": [True, False]}
        # an edit without the active flag keeps it
        providers.update_provider(s, trainer, {**TRAINER, "name": "Koulutus Oyj"}, by="anna")
        assert providers.get_provider(s, trainer).active is False


def test_unchanged_update_records_nothing(sessions):
    trainer = _add(sessions, TRAINER)
    with sessions.begin() as s:
        providers.update_provider(s, trainer, TRAINER, by="anna")
        kinds = s.scalars(select(AuditEvent.data).where(AuditEvent.stream == "providers")).all()
        assert len(kinds) == 1


@pytest.mark.parametrize("changes, field", [
    ({"name": " "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"business_id": "1234567-2"}, "business_id"),  # wrong check digit
    ({"business_id": "12345"}, "business_id"),
    ({"kind": "bank"}, "kind"),
    ({"kind": ""}, "kind"),
    ({"email": "kaisa@"}, "email"),
    ({"phone": "call me"}, "phone"),
])
def test_field_checks(sessions, changes, field):
    with sessions.begin() as s, pytest.raises(FormInvalid) as err:
        providers.create_provider(s, {**TRAINER, **changes}, by="esimies")
    assert list(err.value.errors) == [field]
    assert err.value.values["name"] == str({**TRAINER, **changes}["name"]).strip()


def test_business_id_is_unique_and_old_ids_are_padded(sessions):
    _add(sessions, TRAINER)
    with sessions.begin() as s, pytest.raises(FormInvalid) as err:
        providers.create_provider(s, {**CONSULT, "business_id": "1234567-1"}, by="esimies")
    assert err.value.errors == {"business_id": "A provider with this business ID already exists."}
    other = _add(sessions, {**CONSULT, "business_id": "112223-7"})
    with sessions.begin() as s:
        assert providers.get_provider(s, other).business_id == "0112223-7"
        with pytest.raises(FormInvalid):  # another provider's ID
            providers.update_provider(s, other, {**CONSULT, "business_id": "1234567-1"}, by="anna")


def test_unknown_provider(sessions):
    with sessions.begin() as s:
        with pytest.raises(ProviderNotFound):
            providers.get_provider(s, 99)
        with pytest.raises(ProviderNotFound):
            providers.update_provider(s, 99, TRAINER, by="anna")
        with pytest.raises(ProviderNotFound):
            providers.record_feedback(s, 99, "Hyvä yhteistyö", by="anna")


def test_providers_feedback(sessions):
    trainer = _add(sessions, TRAINER)
    with sessions.begin() as s:
        providers.record_feedback(s, trainer, "Osallistujat tulivat hyvin valmistautuneina.", by="anna",
                                  given_on="2026-02-10", now=T0)
        providers.record_feedback(s, trainer, "Tieto aloituksesta tuli myöhässä.", by="ville", now=T0)
        for text, given_on, field in (("  ", None, "text"), ("x" * 4001, None, "text"),
                                      ("Hyvä", "10.2.2026", "given_on"), ("Hyvä", "2026-03-03", "given_on")):
            with pytest.raises(FormInvalid) as err:
                providers.record_feedback(s, trainer, text, by="anna", given_on=given_on, now=T0)
            assert list(err.value.errors) == [field]
    with sessions.begin() as s:
        rows = providers.feedback_of(s, trainer)
        assert [(r.given_on, r.recorded_by) for r in rows] == [(T0.date(), "ville"), (date(2026, 2, 10), "anna")]
        kinds = s.scalars(select(AuditEvent.kind).where(AuditEvent.stream == "providers")).all()
        assert kinds.count("provider_feedback_recorded") == 2
    late_evening = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # already 3 March in Helsinki
    with sessions.begin() as s:
        row = providers.record_feedback(s, trainer, "Illalla", by="anna", given_on="2026-03-03", now=late_evening)
        assert row.given_on == date(2026, 3, 3)
        assert providers.record_feedback(s, trainer, "Tänään", by="anna", now=late_evening).given_on == date(2026, 3, 3)


# ---------------------------------------------------------------------------------------------
# The provider form field


def test_field_properties():
    item = forms.Field(id="x_provider", label="P", properties={"provider": "training, consultant"})
    assert item.provider_kinds == ("training", "consultant")
    assert forms.Field(id="p", label="P", properties={"provider": "any"}).provider_kinds == ()
    assert forms.Field(id="p", label="P", type="long", properties={"provider": "any"}).provider_kinds is None
    assert forms.Field(id="p", label="P").provider_kinds is None
    assert not item.provider_free_text


def test_a_provider_field_and_a_name_field_together_do_not_deploy(sessions):
    text = (MODELS / "provider_line.bpmn").read_text().replace(
        '<camunda:formField id="line_outcome"', '<camunda:formField id="line_provider_name" label="N" type="string" />'
        '<camunda:formField id="line_outcome"')
    with sessions.begin() as s, pytest.raises(InvalidModel) as err:
        deploy_mod.deploy_files(s, {"provider_line.bpmn": text.encode()}, by="designer")
    assert "sets 'line_provider_name' itself" in str(err.value)


@pytest.mark.parametrize("change, into, message", [
    ('value="training,consultant"', 'value="training,trainer"', "unknown provider kinds trainer"),
    ('<camunda:formField id="line_provider" label="Provider" type="string">',
     '<camunda:formField id="line_provider" label="Provider" type="long">', "applies to string fields only"),
])
def test_wrong_provider_properties_do_not_deploy(sessions, change, into, message):
    text = (MODELS / "provider_line.bpmn").read_text()
    assert text.count(change) == 1
    with sessions.begin() as s, pytest.raises(InvalidModel) as err:
        deploy_mod.deploy_files(s, {"provider_line.bpmn": text.replace(change, into).encode()}, by="designer")
    assert message in str(err.value)


def _open_task(sessions, process_id="provider_line", data=None):
    with sessions.begin() as s:
        iid = runtime.start_instance(s, process_id, by="anna", business_key="0737546-2", data=data, now=T0).id
        task = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == TaskStatus.READY))
    return iid, task


@pytest.mark.parametrize("reload", [False, True])
def test_complete_task_takes_an_active_provider_of_the_field_kinds(sessions, deploy, reload):
    deploy("provider_line.bpmn")
    trainer, partner = _add(sessions, TRAINER), _add(sessions, PARTNER)
    retired = _add(sessions, {**CONSULT, "active": False})
    iid, task = _open_task(sessions)
    if reload:
        runtime.forget_cache()
    for wrong in ("999", str(partner), str(retired), "Koulutus Oy", "-1", "0", "²", "2147483648", "9" * 40):
        with sessions.begin() as s, pytest.raises(FormInvalid) as err:
            runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": wrong}, by="anna",
                                  now=T0)
        assert err.value.errors == {"line_provider": "choose an active provider from the registry"}
    if reload:
        runtime.forget_cache()
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": f" {trainer} "},
                              by="anna", now=T0)
    if reload:
        runtime.forget_cache()
    with sessions.begin() as s:
        variables = runtime.instance_variables(s, iid)
    assert variables["line_provider"] == trainer
    assert variables["line_provider_name"] == "Koulutus Oy"


def test_an_empty_optional_provider_field_sets_no_provider(sessions, deploy):
    deploy("provider_line.bpmn")
    iid, task = _open_task(sessions)
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"line_ended_on": "2026-03-01", "line_provider": ""}, by="anna", now=T0)
        variables = runtime.instance_variables(s, iid)
    assert variables["line_provider"] is None and variables["line_provider_name"] is None


def test_free_text_only_where_the_model_marks_it(sessions, deploy):
    deploy("provider_free_text.bpmn")
    partner = _add(sessions, PARTNER)
    iid, task = _open_task(sessions, "provider_free_text")
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"ref_provider": "Keksintösäätiö"}, by="anna", now=T0)
        variables = runtime.instance_variables(s, iid)
    assert (variables["ref_provider"], variables["ref_provider_name"]) == (None, "Keksintösäätiö")
    iid, task = _open_task(sessions, "provider_free_text")
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"ref_provider": str(partner)}, by="anna", now=T0)
        variables = runtime.instance_variables(s, iid)
    assert (variables["ref_provider"], variables["ref_provider_name"]) == (partner, "Finnvera")
    iid, task = _open_task(sessions, "provider_free_text")
    with sessions.begin() as s, pytest.raises(FormInvalid):  # a number is an id: an unknown one is wrong
        runtime.complete_task(s, task, {"ref_provider": "4711"}, by="anna", now=T0)


def test_choices_list_active_providers_of_the_kinds(sessions):
    trainer, consult = _add(sessions, TRAINER), _add(sessions, CONSULT)
    _add(sessions, {**PARTNER, "active": False})
    with sessions.begin() as s:
        assert providers.choices(s, ("training", "consultant")) == [(consult, "Konsultointi Ab", "consultant"),
                                                                    (trainer, "Koulutus Oy", "training")]
        assert [c[0] for c in providers.choices(s, ("partner",))] == []
        assert len(providers.choices(s)) == 2


# ---------------------------------------------------------------------------------------------
# Report


def _close(sessions, provider_id, ended_on, outcome="completed"):
    iid, task = _open_task(sessions)
    with sessions.begin() as s:
        runtime.complete_task(s, task, {"line_ended_on": ended_on, "line_outcome": outcome,
                                        "line_provider": str(provider_id) if provider_id else ""}, by="anna",
                              now=T0 + timedelta(days=1))
    return iid


def _aftercare(sessions, provider_id, name, talk, **later):
    iid, task = _open_task(sessions, "provider_aftercare",
                           {"service_provider_id": provider_id, "service_provider_name": name,
                            "service_line": "training", **later})
    if talk is not None:
        with sessions.begin() as s:
            runtime.complete_task(s, task, talk, by="anna", now=T0 + timedelta(days=5))
    return iid


def test_report_of_a_small_scenario(sessions, deploy):
    deploy("provider_line.bpmn", "provider_aftercare.bpmn")
    trainer, consult = _add(sessions, TRAINER), _add(sessions, CONSULT)
    first = _close(sessions, trainer, "2026-02-20")
    _close(sessions, trainer, "2026-02-27", outcome="cancelled")
    _close(sessions, consult, "2026-02-25")
    _close(sessions, None, "2026-02-26")  # delivered by the office itself
    _aftercare(sessions, trainer, "Koulutus Oy", {"aftercare_contacted_on": "2026-03-05", "service_met_need": "yes",
                                                  "service_rating": "5", "feedback_from_customer": "Hyvä kouluttaja",
                                                  "new_service_needs": ["recruitment"]},
               follow_up_rating=3, follow_up_new_needs=["recruitment", "training"],
               follow_up_benefit="Läpimenoaika lyheni")
    _aftercare(sessions, trainer, "Koulutus Oy", {"aftercare_contacted_on": "2026-03-06", "service_met_need": "partly",
                                                  "service_rating": "2", "new_service_needs": ["recruitment", "training"]})
    _aftercare(sessions, trainer, "Koulutus Oy", None)  # still waiting for its contact
    _aftercare(sessions, consult, "Konsultointi Ab", {"aftercare_contacted_on": "2026-03-06", "service_rating": "4"})
    with sessions.begin() as s:
        providers.record_feedback(s, trainer, "Asiakkaat olivat hyvin valmistautuneita.", by="ville", now=T0)
    runtime.forget_cache()
    with sessions.begin() as s:
        report = providers.provider_report(s, trainer)
        assert len(report.deliveries) == 2
        assert [d.ended_on for d in report.deliveries] == ["2026-02-27", "2026-02-20"]
        assert [d.outcome for d in report.deliveries] == ["cancelled", "completed"]
        assert report.deliveries[1].instance_id == first and report.deliveries[1].business_key == "0737546-2"
        assert report.deliveries[1].process_id == "provider_line" and report.deliveries[1].closed_by == "anna"
        assert len(report.aftercare) == 3 and report.aftercare_reached == 2
        assert sorted(report.ratings) == [2, 5] and report.rating_average == 3.5
        assert report.met_need == {"yes": 1, "partly": 1}
        assert report.follow_up_ratings == [3] and report.follow_up_average == 3.0
        assert report.new_needs == {"recruitment": 2, "training": 2} and report.with_new_needs == 2
        assert sorted(t for a in report.aftercare for t in a.texts) == [
            ("feedback_from_customer", "Hyvä kouluttaja"), ("follow_up_benefit", "Läpimenoaika lyheni")]
        assert [f.text for f in report.feedback] == ["Asiakkaat olivat hyvin valmistautuneita."]
        outsider = providers.provider_report(s, trainer, reader=Reader.of("olli", {"expert"}))
        assert len(outsider.deliveries) == 2 and outsider.ratings == report.ratings  # every case in the figures
        # listed: only the aftercare whose open task any expert may take
        assert outsider.shown_deliveries == [] and len(outsider.shown_aftercare) == 1 and outsider.hidden == 4
        closer = providers.provider_report(s, trainer, reader=Reader.of("anna", {"expert"}))
        assert closer.hidden == 0 and len(closer.shown_deliveries) == 2
        other = providers.provider_report(s, consult)
        assert len(other.deliveries) == 1 and other.ratings == [4] and other.feedback == []
        assert providers.summary_counts(s) == {trainer: (2, 3), consult: (1, 1)}


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def polku(tmp_path, capsys):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/cli.db")

    def run(*argv: str) -> tuple[int, object, str]:
        code = main(["--json", *argv], settings=settings)
        captured = capsys.readouterr()
        out = captured.out.strip()
        return code, json.loads(out) if out else None, captured.err.strip()

    return run


def test_cli_add_edit_list_feedback_report(polku):
    code, added, _ = polku("provider", "add", "--name", "Koulutus Oy", "--business-id", "1234567-1",
                           "--kind", "training", "--email", "kaisa@koulutus.fi", "--by", "esimies")
    assert code == 0 and added["business_id"] == "1234567-1" and added["active"] is True
    code, data, err = polku("provider", "add", "--name", "X", "--business-id", "1234567-2", "--kind", "consultant")
    assert code == 2 and "business_id" in err and set(data["errors"]) == {"business_id"}
    code, edited, _ = polku("provider", "edit", str(added["id"]), "--phone", "+358 40 765 4321", "--inactive")
    assert code == 0 and edited["phone"] == "+358 40 765 4321" and edited["active"] is False
    assert edited["email"] == "kaisa@koulutus.fi"  # not given: kept
    code, rows, _ = polku("provider", "list", "--active")
    assert code == 0 and rows == []
    code, rows, _ = polku("provider", "list", "--kind", "training")
    assert [r["name"] for r in rows] == ["Koulutus Oy"]
    code, fb, _ = polku("provider", "feedback", str(added["id"]), "--text", "Hyvä yhteistyö", "--given-on",
                        "2026-01-15", "--by", "ville")
    assert code == 0 and fb["given_on"] == "2026-01-15"
    code, report, _ = polku("provider", "report", str(added["id"]))
    assert code == 0 and report["services_delivered"] == 0 and report["provider_feedback"][0]["text"] == "Hyvä yhteistyö"
    code, _data, err = polku("provider", "report", "99")
    assert code == 1 and "No provider 99" in err


def test_cli_each_step_a_new_process_picks_the_provider(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    polku_bin = str(Path(sys.executable).parent / "polku")

    def run(*argv: str, code: int = 0) -> object:
        done = subprocess.run([polku_bin, "--json", *argv], check=False, env=env, capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    run("deploy", str(MODELS / "provider_line.bpmn"))
    provider = run("provider", "add", "--name", "Konsultointi Ab", "--business-id", "2345678-0",
                   "--kind", "consultant")
    instance = run("start", "provider_line", "--business-key", "0737546-2", "--by", "anna")
    task = instance["tasks"][0]["id"]
    refused = run("complete", task, "--data", json.dumps({"line_ended_on": "2026-03-01", "line_provider": "77"}),
                  "--by", "anna", code=2)
    assert refused["errors"] == {"line_provider": "choose an active provider from the registry"}
    run("complete", task, "--data", json.dumps({"line_ended_on": "2026-03-01", "line_provider": str(provider["id"])}),
        "--by", "anna")
    report = run("provider", "report", str(provider["id"]))
    assert report["services_delivered"] == 1 and report["deliveries"][0]["ended_on"] == "2026-03-01"
    assert run("provider", "list")[0]["name"] == "Konsultointi Ab"
