"""Every kind of history event has a label in Finnish and in English: on the audit timeline (every
`EventKind`, and the task actions' `task_action`) and on the customer page's timeline (the kinds it shows). A kind added to the engine
without a label fails here, instead of showing its raw id to a user."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from engine.actions import TASK_ACTION
from engine.audit import EventKind
from engine.customers import TIMELINE_KINDS
from webui.audit import KINDS
from webui.customers import EVENT_LABELS


def _labels(app, table, kinds) -> dict[str, dict[str, str]]:
    """Return {kind: {lang: label}} as a request in each language would show it."""
    shown: dict[str, dict[str, str]] = {}
    with app.test_request_context("/"):
        for lang in ("fi", "en"):
            with force_locale(lang):
                for kind in kinds:
                    shown.setdefault(kind, {})[lang] = str(table[kind]) if kind in table else ""
    return shown


@pytest.mark.parametrize("table, kinds", [(KINDS, [*(k.value for k in EventKind), TASK_ACTION]),
                                          (EVENT_LABELS, [*TIMELINE_KINDS, "contact_logged"])],
                         ids=["audit", "customer"])
def test_every_event_kind_has_a_label_in_both_languages(app, table, kinds):
    shown = _labels(app, table, kinds)
    missing = sorted(k for k, by_lang in shown.items() if not all(by_lang.values()))
    assert not missing, f"no label for {missing}"
    raw = sorted(k for k, by_lang in shown.items() if k in by_lang.values())
    assert not raw, f"labels that are the raw kind id: {raw}"
    untranslated = sorted(k for k, by_lang in shown.items() if by_lang["fi"] == by_lang["en"])
    assert not untranslated, f"no Finnish translation for {untranslated}"


def test_the_audit_timeline_shows_script_output_external_tasks_and_finnish_values(app, client, login_as, sessions):
    from engine import deploy, runtime

    bpmn = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="labels" name="Labels" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="say" />
    <bpmn:scriptTask id="say" scriptFormat="python"><bpmn:script>print("hei")
paikka = "Hämeenlinna &lt;b&gt;"</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="say" targetRef="ext" />
    <bpmn:serviceTask id="ext" camunda:type="external" camunda:topic="lookup" />
    <bpmn:sequenceFlow id="f3" sourceRef="ext" targetRef="e" />
    <bpmn:endEvent id="e" />
  </bpmn:process>
</bpmn:definitions>""".encode()
    with sessions.begin() as s:
        deploy.deploy_files(s, {"labels.bpmn": bpmn}, by="test")
        instance_id = runtime.start_instance(s, "labels", by="test").id
    login_as("auditor")
    page = client.get(f"/audit/instances/{instance_id}").get_data(as_text=True)
    assert "Skriptin tuloste" in page and "Ulkoinen tehtävä odottaa käsittelijää" in page
    assert ">script_output<" not in page and ">external_task_created<" not in page
    assert "&#34;Hämeenlinna &lt;b&gt;&#34;" in page, "history values with their Finnish letters, HTML escaped"
    client.post("/language", data={"lang": "en"})
    page = client.get(f"/audit/instances/{instance_id}").get_data(as_text=True)
    assert "Script output" in page and "External task waits for a worker" in page
