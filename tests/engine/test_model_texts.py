"""Model texts: the Babel extractor, the English catalogue of the shipped models, no rule codes, and
each deployed version keeping the translations of its own texts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from lxml import etree

from engine import deploy, model_texts, summary
from engine.db import make_engine, make_sessions
from engine.inbox import tasks as open_tasks
from engine.models import Instance, ProcessVersion

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "bpmn").glob("*.bpmn")) + sorted((ROOT / "bpmn").glob("*.dmn"))
PO = model_texts.TRANSLATIONS / "en" / "LC_MESSAGES" / "models.po"
TASK_FI = "Arvioi palvelutarve asiakkaan kanssa"
TASK_EN = "Assess service needs with the customer"

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="urn:t">
  <bpmn:process id="texts" name="Tekstit" isExecutable="true">
    <bpmn:startEvent id="start" name="Alku" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:userTask id="work" name="{task}" camunda:candidateGroups="expert">
      <bpmn:documentation>Tee työ huolella.</bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="channel" label="Kanava" type="enum">
            <camunda:properties>
              <camunda:property id="help" value="Mieluiten puhelimitse." />
              <camunda:property id="summary" value="true" />
            </camunda:properties>
            <camunda:value id="phone" name="Puhelin" />
          </camunda:formField>
          <camunda:formField id="note" label="Muistiinpanot" type="string" />
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end" name="Loppu" />
  </bpmn:process>
</bpmn:definitions>
"""


def model(task: str = TASK_FI) -> bytes:
    """Return a one-task model whose task has the given name."""
    return MODEL.format(task=task).encode()


def shipped_texts() -> dict[str, list[str]]:
    """Return {text: [where]} of every people-facing text of the shipped models."""
    found: dict[str, list[str]] = {}
    for path in MODELS:
        for line, text, where in model_texts.texts_of(etree.parse(str(path)).getroot()):
            found.setdefault(text, []).append(f"{path.name}:{line} {where}")
    return found


def test_extractor_yields_names_labels_options_help_and_documentation_not_ids(tmp_path):
    path = tmp_path / "texts.bpmn"
    path.write_bytes(model())
    with path.open("rb") as handle:
        found = {text: comments for _line, _f, text, comments in model_texts.extract(handle, [], [], {})}
    assert set(found) == {"Tekstit", "Alku", TASK_FI, "Tee työ huolella.", "Kanava", "Mieluiten puhelimitse.",
                          "Puhelin", "Muistiinpanot", "Loppu"}
    assert found[TASK_FI] == ["texts.bpmn:7 userTask work: name"]


def test_pybabel_extract_picks_model_texts_up_through_the_registered_extractor(tmp_path):
    (tmp_path / "bpmn").mkdir()
    (tmp_path / "bpmn" / "texts.bpmn").write_bytes(model())
    config = ROOT / "webui" / "babel-models.cfg"
    pot = tmp_path / "models.pot"
    result = subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F", str(config),
                             "-o", str(pot), str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    with pot.open("rb") as handle:
        ids = {m.id for m in read_po(handle) if m.id}
    assert {TASK_FI, "Kanava", "Puhelin", "Mieluiten puhelimitse.", "Tee työ huolella."} <= ids
    assert "channel" not in ids and "phone" not in ids


def test_every_shipped_model_text_has_an_english_translation():
    with PO.open("rb") as handle:
        english = {m.id: m.string for m in read_po(handle) if m.id}
    untranslated = {t: where for t, where in shipped_texts().items() if not english.get(t)}
    assert untranslated == {}, "run `python -m webui.catalogs` and translate engine/translations/en/…/models.po"
    assert model_texts.catalogue("en") == {k: v for k, v in english.items() if v}, "the .mo lags behind the .po"


def test_no_rule_code_in_any_model_text_or_its_translation():
    texts = shipped_texts()
    assert model_texts.rule_codes(texts) == []
    assert model_texts.rule_codes(model_texts.catalogue("en").values()) == []
    assert model_texts.rule_codes(["R1: lupaus", "katso R12 : x"]) == ["R1: lupaus", "katso R12 : x"]


def test_shipped_models_are_written_in_finnish():
    english_words = re.compile(r"\b(the|and|with|customer|service)\b", re.IGNORECASE)
    catalogue = model_texts.catalogue("en")
    assert [t for t in shipped_texts() if english_words.search(t) and catalogue.get(t) == t] == []
    assert catalogue[TASK_FI] == TASK_EN


def test_translate_prefers_the_versions_stored_text_then_the_catalogue_then_the_model():
    stored = {"translations": {"en": {TASK_FI: "Stored wording"}}}
    assert model_texts.translate(TASK_FI, "en", stored) == "Stored wording"
    assert model_texts.translate(TASK_FI, "en", {}) == TASK_EN
    assert model_texts.translate("Ei käännöstä", "en", stored) == "Ei käännöstä"
    assert model_texts.translate(TASK_FI, "fi", stored) == TASK_FI


def test_each_version_keeps_the_translations_of_its_own_texts(session):
    first = deploy.deploy_files(session, {"texts.bpmn": model()}, by="test").created[0]
    second = deploy.deploy_files(session, {"texts.bpmn": model("Arvioi tarve uudelleen")}, by="test").created[0]
    assert (first.version, second.version) == (1, 2)
    assert first.catalogue["translations"]["en"][TASK_FI] == TASK_EN
    assert TASK_FI not in second.catalogue["translations"]["en"]
    assert model_texts.translate(TASK_FI, "en", first.catalogue) == TASK_EN
    assert model_texts.translate("Arvioi tarve uudelleen", "en", second.catalogue) == "Arvioi tarve uudelleen"
    assert model_texts.missing(model_texts.process_texts(second.catalogue) | {"Tekstit"}, "en") == [
        "Alku", "Arvioi tarve uudelleen", "Loppu", "Mieluiten puhelimitse.", "Tee työ huolella.", "Tekstit"]


def test_summary_lists_only_marked_fields_with_values(session):
    version = deploy.deploy_files(session, {"texts.bpmn": model()}, by="test").created[0]
    found = summary.case_summary(version.catalogue, {"channel": "phone", "note": "x", "internal": 3})
    assert [(f.id, v) for f, v in found] == [("channel", "phone")]
    unmarked = {"processes": {"p": {"work": {"form": [{"id": "note", "label": "Muistiinpanot"}]}}}}
    assert [f.id for f, _v in summary.case_summary(unmarked, {"note": "x", "internal": 3})] == ["note"]


def test_versions_deployed_through_the_cli_keep_their_own_translations(tmp_path):
    env = {**os.environ, "POLKU_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    polku = str(Path(sys.executable).parent / "polku")

    def run(*argv: str) -> object:
        done = subprocess.run([polku, *argv], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    path = tmp_path / "texts.bpmn"
    path.write_bytes(model())
    run("deploy", str(path))
    old = run("start", "texts", "--by", "anna")["id"]
    path.write_bytes(model("Arvioi tarve uudelleen"))
    run("deploy", str(path))
    new = run("start", "texts", "--by", "anna")["id"]
    engine = make_engine(env["POLKU_DATABASE_URL"])
    with make_sessions(engine).begin() as s:
        shown = {}
        for instance_id in (old, new):
            [task] = open_tasks(s, instance_id=instance_id)
            version = s.get(ProcessVersion, s.get(Instance, instance_id).version_id)
            shown[instance_id] = (task.name, model_texts.translate(task.name, "en", version.catalogue))
    engine.dispose()
    assert shown == {old: (TASK_FI, TASK_EN), new: ("Arvioi tarve uudelleen", "Arvioi tarve uudelleen")}
