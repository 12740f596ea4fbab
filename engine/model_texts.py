"""Model texts: the words of BPMN/DMN models that people read, and their translations.

Models are written in Finnish (`MODEL_LOCALE`). Their people-facing texts — process, lane and
element names, documentation, form labels, enum option names, help texts, DMN names, labels and
rule descriptions — are extracted by `extract`, a Babel extractor registered as the `bpmn`
method (entry point `babel.extractors` in `pyproject.toml`), into the `models` domain:
`engine/translations/<locale>/LC_MESSAGES/models.po` (msgid = the model's Finnish text, msgstr =
its translation). `python -m webui.catalogs` extracts, merges and compiles it with the UI strings.

At deploy the translations of every text of a version are copied into the version's catalogue
(`stored_translations`), so a case keeps showing the texts of its own version after a newer one
changes them. `translate` looks a text up in the version's stored translations, then in the
current catalogue, and falls back to the model's own text. Ids, variable names and expressions
are never translated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from babel.messages.mofile import read_mo
from lxml import etree

from . import xmlcheck

MODEL_LOCALE = "fi"
DOMAIN = "models"
TRANSLATIONS = Path(__file__).parent / "translations"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
NAMED = {  # elements whose `name` people read (BPMN flow elements, containers; DMN decisions)
    "process", "participant", "lane", "sequenceFlow", "task", "userTask", "serviceTask", "scriptTask",
    "businessRuleTask", "sendTask", "receiveTask", "manualTask", "callActivity", "subProcess",
    "transaction", "adHocSubProcess", "startEvent", "endEvent", "intermediateCatchEvent",
    "intermediateThrowEvent", "boundaryEvent", "exclusiveGateway", "inclusiveGateway",
    "parallelGateway", "eventBasedGateway", "complexGateway", "decision", "definitions",
}
TEXT_CHILDREN = {"documentation", "description", "text"}  # text is read only inside textAnnotation
LABELLED = {"formField", "input", "output"}  # camunda form fields, DMN inputs and outputs
PEOPLE_PROPERTIES = {"help", "placeholder"}  # camunda:property ids whose value is for people
RULE_CODE = re.compile(r"\bR\d+\s*:")


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _clean(text: str | None) -> str:
    return (text or "").strip()


def texts_of(root: etree._Element) -> Iterator[tuple[int, str, str]]:
    """Yield (line, text, where) for every people-facing text under an element, in document order."""
    for el in root.iter():
        local = _local(el)
        eid = el.get("id") or ""
        if local in NAMED and _clean(el.get("name")):
            yield el.sourceline or 0, _clean(el.get("name")), f"{local} {eid}: name"
        elif local in LABELLED and _clean(el.get("label")):
            yield el.sourceline or 0, _clean(el.get("label")), f"{local} {eid}: label"
        elif local == "value" and etree.QName(el).namespace == CAMUNDA and _clean(el.get("name")):
            parent = el.getparent()
            yield el.sourceline or 0, _clean(el.get("name")), \
                f"option {el.get('id')} of {parent.get('id') if parent is not None else ''}"
        elif local == "property" and el.get("id") in PEOPLE_PROPERTIES and _clean(el.get("value")):
            field = el.getparent().getparent() if el.getparent() is not None else None
            owner = field.get("id") if field is not None else ""
            yield el.sourceline or 0, _clean(el.get("value")), f"{el.get('id')} of {owner}"
        elif local in TEXT_CHILDREN and _clean(el.text):
            parent = el.getparent()
            if local == "text" and (parent is None or _local(parent) != "textAnnotation"):
                continue  # DMN cells and expressions are code, not words
            where = f"{_local(parent)} {parent.get('id') or ''}" if parent is not None else ""
            yield el.sourceline or 0, _clean(el.text), f"{where}: {local}"


def extract(fileobj: IO[bytes], keywords: Any, comment_tags: Any,
            options: dict[str, Any]) -> Iterator[tuple[int, None, str, list[str]]]:
    """Babel extractor for .bpmn and .dmn files: yield the texts people read, with where they are."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(fileobj, parser).getroot()
    filename = Path(getattr(fileobj, "name", "") or "").name
    for line, text, where in texts_of(root):
        yield line, None, text, [f"{filename}:{line} {where}" if filename else where]


def process_texts(catalogue: dict[str, Any]) -> set[str]:
    """Return every text a version's catalogue shows people (names, lanes, forms, documentation)."""
    found: set[str] = set(catalogue.get("texts", []))
    for entries in catalogue.get("processes", {}).values():
        for entry in entries.values():
            found.update(_clean(entry.get(key)) for key in ("name", "lane", "documentation"))
            for fld in entry.get("form", []):
                found.add(_clean(fld.get("label")))
                found.update(_clean(name) for _id, name in fld.get("options", []))
                found.update(_clean(fld.get("properties", {}).get(p)) for p in PEOPLE_PROPERTIES)
    found.discard("")
    return found


@lru_cache(maxsize=8)
def _catalogue(locale: str, directory: str, stamp: float) -> dict[str, str]:
    path = Path(directory) / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with path.open("rb") as handle:
        catalog = read_mo(handle)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and isinstance(m.id, str)}


def catalogue(locale: str, directory: Path = TRANSLATIONS) -> dict[str, str]:
    """Return {model text: translation} of the compiled `models` catalogue of a language ({} if none)."""
    path = directory / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if locale == MODEL_LOCALE or not path.exists():
        return {}
    return _catalogue(locale, str(directory), path.stat().st_mtime)


def locales(directory: Path = TRANSLATIONS) -> list[str]:
    """Return the languages the `models` domain is translated into."""
    return sorted(p.parent.parent.name for p in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


def stored_translations(texts: Iterable[str], directory: Path = TRANSLATIONS) -> dict[str, dict[str, str]]:
    """Return {locale: {text: translation}} for these texts, to store with a deployed version."""
    wanted = set(texts)
    result = {}
    for locale in locales(directory):
        known = catalogue(locale, directory)
        result[locale] = {t: known[t] for t in sorted(wanted) if t in known}
    return result


def translate(text: str | None, locale: str, version_catalogue: dict[str, Any] | None = None) -> str:
    """Return a model text in a language: the version's stored translation, the catalogue's, or itself."""
    if not text or locale == MODEL_LOCALE:
        return text or ""
    stored = (version_catalogue or {}).get("translations", {}).get(locale, {})
    return stored.get(text) or catalogue(locale).get(text) or text


def missing(texts: Iterable[str], locale: str, directory: Path = TRANSLATIONS) -> list[str]:
    """Return the texts the catalogue of a language does not translate, sorted."""
    known = catalogue(locale, directory)
    return sorted({t for t in texts if t and t not in known})


def untranslated(filename: str, content: bytes, directory: Path = TRANSLATIONS) -> list[dict[str, Any]]:
    """Return the texts of a model file that a language's catalogue lacks: [{locale, text, line, where}]."""
    tree, problems = xmlcheck.parse_untrusted(filename, content)
    if tree is None or problems:
        return []  # validation reports why the file cannot be read
    found: list[dict[str, Any]] = []
    for locale in locales(directory):
        known = catalogue(locale, directory)
        seen: set[str] = set()
        for line, text, where in texts_of(tree.getroot()):
            if text not in known and text not in seen:
                seen.add(text)
                found.append({"locale": locale, "text": text, "line": line, "where": where})
    return found


def rule_codes(texts: Iterable[str]) -> list[str]:
    """Return the texts that carry a rule code such as 'R1:' (designer notes, not for experts)."""
    return [t for t in texts if RULE_CODE.search(t)]
