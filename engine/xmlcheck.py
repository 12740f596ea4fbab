"""The first stage of deploy validation: read an uploaded BPMN or DMN file, which is untrusted XML.

It owns the size limit, the refusal of DOCTYPE/ENTITY declarations and processing instructions
(checked on the bytes before lxml sees them, and again on the parsed tree), character-encoding
checks, well-formedness, telling BPMN from DMN, and validation against the OMG XSDs that ship with
SpiffWorkflow (compiled once, then cached). Every finding is an `engine.errors.Problem` worded for
a process designer. `engine.deploy` calls `check_file` on each upload before SpiffWorkflow parses it.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from .errors import InvalidModel, Problem
from .spiff import BPMN_XSD_PATH, DMN_XSD_PATHS

MAX_BYTES = 5_000_000
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_DMN12_NS = "http://www.omg.org/spec/DMN/20180521/MODEL/"
_DMN12_DMNDI_NS = "http://www.omg.org/spec/DMN/20180521/DMNDI/"
_NOT_WELL_FORMED = "The file is not well-formed XML: "

# Encodings a modeler may declare, by the lower-cased declared name -> Python codec.
_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
    "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "latin1": "latin-1", "latin-1": "latin-1",
    "iso-8859-15": "iso8859-15", "windows-1252": "cp1252", "cp1252": "cp1252",
    "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be",
}
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_SPACE = re.compile(r"[ \t\r\n]*")
_PI_TARGET = re.compile(r"<\?([^\s?]*)")


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_untrusted(filename: str, content: bytes, *,
                    max_bytes: int = MAX_BYTES) -> tuple[etree._ElementTree | None, list[Problem]]:
    """Parse uploaded XML safely; return the tree (None when unreadable) and the problems found."""
    if not content.strip():
        return None, [Problem(filename, None, None, "The file is empty.")]
    if len(content) > max_bytes:
        return None, [Problem(filename, None, None, f"The file is {len(content):,} bytes, more than the "
                              f"upload limit of {max_bytes:,} bytes.")]
    text, content, problem = _decode(filename, content)
    if problem is not None:
        return None, [problem]
    problem = _prolog_problem(filename, text)
    if problem is not None:
        return None, [problem]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=False, dtd_validation=False)
    try:
        root = etree.fromstring(content, parser, base_url=filename)
    except etree.XMLSyntaxError:
        return None, [_syntax_problem(filename, text, parser.error_log[0])]
    tree = root.getroottree()
    problems = _tree_tricks(filename, tree)
    return (None, problems) if problems else (tree, [])


def _decode(filename: str, content: bytes) -> tuple[str, bytes, Problem | None]:
    """Check the bytes are text in a supported encoding; return the text and the bytes for lxml."""
    if content.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "", content, Problem(filename, None, None, "The file is saved as UTF-32, which is not "
                                    "supported: save it as UTF-8.")
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    elif content.startswith(b"<\x00"):
        codec, content = "utf-16-le", codecs.BOM_UTF16_LE + content  # libxml2 needs the BOM here
    elif content.startswith(b"\x00<"):
        codec, content = "utf-16-be", codecs.BOM_UTF16_BE + content
    elif b"\x00" in content[:1024]:
        return "", content, Problem(filename, None, None, "The file is not a text file (it looks like "
                                    "binary data); upload a .bpmn or .dmn XML file.")
    else:
        found = _DECLARED_ENCODING.match(content.removeprefix(codecs.BOM_UTF8)[:400])
        declared = found.group(1).decode("ascii") if found else "UTF-8"
        codec = _ENCODINGS.get(declared.lower(), "")
        if not codec or codec.startswith("utf-16"):
            return "", content, Problem(filename, 1, None, f"The file declares the character encoding "
                                        f"'{declared}', which is not supported (or does not match the "
                                        "file): save it as UTF-8.")
        codec = "utf-8-sig" if codec == "utf-8" else codec
    try:
        return content.decode(codec), content, None
    except UnicodeDecodeError as err:
        line = content[:err.start].decode(codec, errors="replace").count("\n") + 1
        name = {"utf-8-sig": "UTF-8", "ascii": "US-ASCII"}.get(codec, codec.upper())
        return "", content, Problem(filename, line, None, f"The file is not valid {name} text: line "
                                    f"{line} contains bytes that cannot be read as {name}. Save the "
                                    "file as UTF-8.")


def _prolog_problem(filename: str, text: str) -> Problem | None:
    """Refuse DOCTYPE, ENTITY and processing instructions before the root element."""
    pos = 1 if text.startswith("\ufeff") else 0
    if text.startswith("<?xml", pos) and text[pos + 5:pos + 6].isspace():
        pos = text.find("?>", pos)
        if pos < 0:
            return None  # the parser reports the unfinished declaration
        pos += 2
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end < 0:
                return None
            pos = end + 3
        elif text.startswith(("<?", "<!"), pos):
            return Problem(filename, text.count("\n", 0, pos) + 1, None, _prolog_refusal(text, pos))
        else:
            return None


def _prolog_refusal(text: str, pos: int) -> str:
    if text.startswith("<?xml", pos) and text[pos + 5:pos + 6].isspace():
        return _NOT_WELL_FORMED + _SENTENCES["late_declaration"]
    if text.startswith("<?", pos):
        target = _PI_TARGET.match(text, pos)
        return _pi_refused(target[1] if target else "")
    word = text[pos + 2:pos + 9].upper()
    if word.startswith("ENTITY"):
        return "Files with an ENTITY declaration are refused: models must not define entities."
    if word.startswith("DOCTYPE"):
        return "Files with a DOCTYPE declaration are refused: models must not define entities."
    return ("Files with '<!' declarations before the root element are refused: models must not define "
            "entities.")


def _pi_refused(target: str) -> str:
    return (f"Processing instructions such as <?{target} ...?> are refused: a model holds only the XML "
            "declaration and elements.")


def _tree_tricks(filename: str, tree: etree._ElementTree) -> list[Problem]:
    """Refuse what got past the prolog scan: a DTD, processing instructions, XInclude."""
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return [Problem(filename, None, None, "Files with a DOCTYPE declaration are refused: models "
                        "must not define entities.")]
    problems = []
    for pi in tree.xpath("//processing-instruction()"):
        problems.append(Problem(filename, pi.sourceline, element_id(pi.getparent()),
                                _pi_refused(pi.target)))
    for el in tree.iter(f"{{{XINCLUDE_NS}}}*"):
        problems.append(Problem(filename, el.sourceline, element_id(el), "XInclude elements are "
                                "refused: a model must be a single self-contained file."))
    return problems


# ---------------------------------------------------------------------------------------------
# Well-formedness errors, in words


_SYNTAX = [
    (r"Premature end of data in tag (\S+) line (\d+)", "never_closed"),
    (r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)", "mismatch"),
    (r"Couldn't find end of Start Tag (\S+) line (\d+)", "unfinished_tag"),
    (r"Specification mandates value for attribute (\S+)", "no_value"),
    (r"AttValue: \" or ' expected", "unquoted"),
    (r"Attribute (\S+) redefined", "twice"),
    (r"xmlParseEntityRef: no name|EntityRef: expecting ';'", "ampersand"),
    (r"StartTag: invalid element name", "less_than"),
    (r"Entity '([^']+)' not defined", "entity"),
    (r"Extra content at the end of the document", "extra"),
    (r"Start tag expected, '<' not found|Document is empty", "no_start"),
    (r"Namespace prefix (\S+) (?:for (\S+) )?on (\S+) is not defined", "prefix"),
    (r"(?:Invalid character|PCDATA invalid Char value|invalid character in attribute value)", "char"),
    (r"Comment not terminated", "comment"),
    (r"XML declaration allowed only at the start", "late_declaration"),
    (r"Excessive depth in document: (\d+)", "depth"),
]


def _syntax_problem(filename: str, text: str, entry: etree._LogEntry) -> Problem:
    """Turn libxml2's first well-formedness error into a sentence."""
    lines = text.split("\n")  # libxml2 counts lines by newline characters only
    line = entry.line or None
    for pattern, kind in _SYNTAX:
        found = re.search(pattern, entry.message)
        if found:
            break
    else:
        return Problem(filename, line, None, _NOT_WELL_FORMED + entry.message.strip().rstrip(".") + ".")
    groups = found.groups()

    def qname(local: str, at: int | None) -> str:
        """Recover the prefix libxml2 drops from tag names, from the source line."""
        named = re.search(rf"</?([\w.\-]+:)?{re.escape(local)}(?=[\s/>]|$)", _source(lines, at))
        return (named.group(1) or "") + local if named else local

    element = None
    if kind == "never_closed":
        opened = int(groups[1])
        message = f"the tag '{qname(groups[0], opened)}' opened on line {opened} is never closed."
        element, line = _source_id(lines, opened), opened
    elif kind == "mismatch":
        opened = int(groups[1])
        message = (f"the tag '{qname(groups[0], opened)}' opened on line {opened} is closed by "
                   f"'</{qname(groups[2], line)}>' on line {line}.")
        element = _source_id(lines, opened)
    elif kind == "less_than" and re.search(r"<!\s*(DOCTYPE|ENTITY)", _source(lines, line), re.IGNORECASE):
        return Problem(filename, line, None, "Files with a DOCTYPE declaration are refused: models must "
                       "not define entities.")
    else:
        message = _syntax_sentence(kind, groups, qname)
    return Problem(filename, line, element, _NOT_WELL_FORMED + message)


_SENTENCES = {
    "no_value": "the attribute '{0}' has no value (write name=\"value\").",
    "unquoted": "an attribute value is not in quotes (write name=\"value\").",
    "twice": "the attribute '{0}' appears twice on the same element.",
    "ampersand": "a '&' in text must be written as '&amp;'.",
    "less_than": "a '<' that does not start a tag must be written as '&lt;'.",
    "entity": ("'&{0};' is not defined in XML; only &amp; &lt; &gt; &quot; &apos; and numeric "
               "references such as &#160; may be used."),
    "extra": "there is content after the end of the root element (a file has exactly one root element).",
    "no_start": "it does not start with an XML tag.",
    "prefix": "the namespace prefix '{0}' is not declared (add xmlns:{0}=\"...\" to the root element).",
    "char": "it contains a control character that XML does not allow.",
    "comment": "a comment '<!--' is never closed with '-->'.",
    "late_declaration": "the XML declaration '<?xml ...?>' must be at the very start of the file.",
    "depth": "elements are nested more than {0} levels deep.",
}


def _syntax_sentence(kind: str, groups: tuple, qname: Callable[[str, int | None], str]) -> str:
    if kind == "unfinished_tag":
        return f"the start tag '{qname(groups[0], int(groups[1]))}' on line {groups[1]} is not finished."
    return _SENTENCES[kind].format(*groups)


def _source(lines: list[str], at: int | None) -> str:
    return lines[at - 1] if at and 0 < at <= len(lines) else ""


def _source_id(lines: list[str], at: int) -> str | None:
    """Find the id attribute written on a source line (for errors found before a tree exists)."""
    found = re.search(r"""\bid\s*=\s*["']([^"']+)["']""", _source(lines, at))
    return found.group(1) if found else None


# ---------------------------------------------------------------------------------------------
# Kind and schema


def model_kind(tree: etree._ElementTree) -> str:
    """Return "bpmn" or "dmn" from the root element's namespace.

    Raises:
        InvalidModel: the root element is not a BPMN or DMN `definitions` element.
    """
    root = tree.getroot()
    qname = etree.QName(root)
    if qname.localname == "definitions" and qname.namespace == BPMN_NS:
        return "bpmn"
    if qname.localname == "definitions" and qname.namespace in DMN_XSD_PATHS:
        return "dmn"
    filename = os.path.basename(tree.docinfo.URL or "") or "model"
    where = f" in the namespace '{qname.namespace}'" if qname.namespace else " without a namespace"
    raise InvalidModel([Problem(filename, root.sourceline, element_id(root),
                                f"The file is not a BPMN or DMN file: its root element is "
                                f"'{_display(root)}'{where}, not a BPMN 2.0 or DMN 'definitions' element.")])


@dataclass
class _Schema:
    xsd: etree.XMLSchema
    lock: threading.Lock
    names: set[str]  # element names the standard defines, for "not part of BPMN" messages
    standard: str


_schemas: dict[str, _Schema] = {}
_schemas_lock = threading.Lock()

# Spiff ships DMN 1.2 with the DI schema where DMNDI belongs, so DMN12.xsd does not compile as is;
# this stand-in declares the DMNDI element and lets its diagram content through unchecked.
_DMNDI12_STANDIN = f"""<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    targetNamespace="{_DMN12_DMNDI_NS}" elementFormDefault="qualified">
  <xsd:element name="DMNDI"><xsd:complexType><xsd:sequence>
    <xsd:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
  </xsd:sequence><xsd:anyAttribute namespace="##any" processContents="lax"/></xsd:complexType></xsd:element>
</xsd:schema>"""
_STANDIN_URL = "polku-standin:dmndi12.xsd"


class _StandinResolver(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        if url == _STANDIN_URL:
            return self.resolve_string(_DMNDI12_STANDIN, context)
        return None


def _schema(namespace: str) -> _Schema:
    """Return the compiled schema for a model namespace, compiling it on first use."""
    with _schemas_lock:
        if namespace not in _schemas:
            path = BPMN_XSD_PATH if namespace == BPMN_NS else DMN_XSD_PATHS[namespace]
            parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
            parser.resolvers.add(_StandinResolver())
            doc = etree.parse(path, parser)
            if namespace == _DMN12_NS:
                for imp in doc.getroot().iterfind("{http://www.w3.org/2001/XMLSchema}import"):
                    if imp.get("namespace") == _DMN12_DMNDI_NS:
                        imp.set("schemaLocation", _STANDIN_URL)
            standard = "BPMN 2.0" if namespace == BPMN_NS else "DMN"
            _schemas[namespace] = _Schema(etree.XMLSchema(doc), threading.Lock(),
                                          _declared_names(os.path.dirname(path), namespace), standard)
        return _schemas[namespace]


def _declared_names(folder: str, namespace: str) -> set[str]:
    """Collect every element name the XSD files of a folder declare for a namespace."""
    names: set[str] = set()
    for name in os.listdir(folder):
        if name.endswith(".xsd"):
            doc = etree.parse(os.path.join(folder, name), etree.XMLParser(no_network=True, load_dtd=False))
            if doc.getroot().get("targetNamespace") == namespace:
                names.update(doc.xpath("//xsd:element/@name",
                                       namespaces={"xsd": "http://www.w3.org/2001/XMLSchema"}))
    return names


def schema_problems(filename: str, tree: etree._ElementTree) -> list[Problem]:
    """Validate a model against the OMG BPMN 2.0 or DMN XSD; return the problems in words."""
    try:
        model_kind(tree)
    except InvalidModel as err:
        return [Problem(filename, p.line, p.element, p.message) for p in err.problems]
    schema = _schema(etree.QName(tree.getroot()).namespace or "")
    duplicates = _duplicate_ids(tree)  # streaming validation does not see these
    with schema.lock:  # the error log lives on the shared schema object
        entries = _stream_errors(schema, tree)
        if not entries and not duplicates:
            return []
        located = len(entries) + len(duplicates) <= _MAX_LOCATED
        if located:  # validating the tree gives lines and paths, at a cost that grows with the errors
            schema.xsd.validate(tree)
            entries = list(schema.xsd.error_log)
    locator = _Locator(tree)
    problems: list[Problem] = []
    if not located:
        problems = [Problem(filename, element_line(el), el.get("id"), _DUPLICATE_ID.format(el.get("id")))
                    for el in duplicates[:_MAX_REPORTED + 1]]
    seen: set[tuple] = set()
    for entry in entries:
        if len(problems) > _MAX_REPORTED:
            break
        el = locator.find(entry) if located else None
        attr, message = _schema_sentence(entry.message, el, locator, schema)
        key = (entry.path, attr or message)
        if located and key in seen:
            continue  # libxml2 reports some bad values twice, in two wordings
        seen.add(key)
        problems.append(Problem(filename, element_line(el), element_id(el), message))
    if len(problems) > _MAX_REPORTED:
        problems[_MAX_REPORTED:] = [Problem(filename, None, None, f"The file breaks the {schema.standard} "
                                            f"schema in more places; fix the first {_MAX_REPORTED} and "
                                            "check again.")]
    return problems


def _duplicate_ids(tree: etree._ElementTree) -> list[etree._Element]:
    """List the elements that repeat an id (only ids the OMG schemas define: extensions may repeat)."""
    seen: set[str] = set()
    repeats = []
    for el in tree.iter(etree.Element):
        value = el.get("id")
        if value and _OMG.match(el.tag):
            if value in seen:
                repeats.append(el)
            seen.add(value)
    return repeats


def _stream_errors(schema: _Schema, tree: etree._ElementTree) -> list[etree._LogEntry]:
    """Validate while re-parsing: fast whatever the number of errors, but without lines or paths.

    lxml records the path of every error's element, which costs time in proportion to the
    element's preceding siblings: 20,000 bad siblings take minutes in `XMLSchema.validate`.
    """
    parser = etree.XMLParser(schema=schema.xsd, resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        etree.fromstring(etree.tostring(tree), parser)
    except etree.XMLSyntaxError:
        pass  # the entries are in the parser's log
    return list(parser.error_log)


def check_file(filename: str, content: bytes, *, max_bytes: int = MAX_BYTES
               ) -> tuple[etree._ElementTree | None, str | None, list[Problem]]:
    """Parse, classify and schema-check an uploaded model: return (tree, kind, problems)."""
    tree, problems = parse_untrusted(filename, content, max_bytes=max_bytes)
    if tree is None:
        return None, None, problems
    try:
        kind = model_kind(tree)
    except InvalidModel as err:
        return tree, None, [Problem(filename, p.line, p.element, p.message) for p in err.problems]
    return tree, kind, schema_problems(filename, tree)


# ---------------------------------------------------------------------------------------------
# Schema errors, in words

_MAX_REPORTED = 50
_MAX_LOCATED = 500
_DUPLICATE_ID = "The id '{}' is used by more than one element; ids must be unique in a file."
_OMG = re.compile(r"\{https?://www\.omg\.org/spec/")
_HEAD = re.compile(r"^Element '(?P<el>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: (?P<rest>.*)$", re.DOTALL)
_TYPES = {
    "xs:boolean": "true or false", "xs:integer": "a whole number", "xs:int": "a whole number",
    "xs:nonNegativeInteger": "a whole number of 0 or more", "xs:positiveInteger": "a whole number above 0",
    "xs:double": "a number", "xs:decimal": "a number", "xs:float": "a number", "xs:anyURI": "a URI",
    "xs:QName": "an id or a prefixed name", "xs:IDREF": "the id of another element",
    "xs:NCName": "a name without spaces or colons", "xs:IDREFS": "ids separated by spaces",
}


def _schema_sentence(raw: str, el: etree._Element | None, locator: _Locator,
                     schema: _Schema) -> tuple[str | None, str]:
    """Return (what the error is about: an attribute, "#text" or None; a sentence) for a libxml2 error."""
    head = _HEAD.match(raw.strip())
    if head is None:
        return None, locator.qualify(raw.strip(), el)
    name = _display(el) if el is not None else locator.qualify(head["el"], el)
    attr = locator.qualify(head["attr"], el) if head["attr"] else None
    rest = head["rest"].strip()
    if found := re.match(r"The attribute '([^']+)' is required but missing", rest):
        return found[1], f"Element '{name}' is missing the required attribute '{found[1]}'."
    if found := re.match(r"The attribute '([^']+)' is not allowed", rest):
        return found[1], (f"Element '{name}' does not allow the attribute '{locator.qualify(found[1], el)}'; "
                          "extension attributes need their own namespace prefix, such as 'camunda:'.")
    if rest.startswith("This element is not expected"):
        return None, _unexpected(name, rest, el, locator, schema)
    if found := re.match(r"Missing child element\(s\)\. Expected is (?:one of )?\( (.*) \)", rest, re.DOTALL):
        return None, (f"Element '{name}' is missing a required child element: "
                      f"{_expected(found[1], el, locator)}.")
    if found := re.match(r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set \{(.*)\}",
                         rest, re.DOTALL):
        allowed = ", ".join(v.strip().strip("'") for v in found[2].split(","))
        return attr or "#text", (f"{_where(name, attr)} has the value '{found[1]}', which is not allowed: "
                                 f"use one of {allowed}.")
    if found := re.match(r"The QName value '([^']*)' has no corresponding namespace declaration", rest):
        prefix = found[1].split(":")[0]
        return attr or "#text", (f"{_where(name, attr)} refers to '{found[1]}', but the prefix '{prefix}' "
                                 "is not declared in the file.")
    if found := re.match(r"The QName value '([^']*)' of the xsi:type attribute does not resolve", rest):
        return "xsi:type", (f"Element '{name}' has xsi:type '{locator.qualify(found[1], el)}', which is not "
                            f"a {schema.standard} type.")
    if found := re.match(r"'(.*)' is not a valid value of the (?:atomic|list|union) type '([^']+)'",
                         rest, re.DOTALL):
        return attr or "#text", _bad_value(name, attr, found[1], found[2], locator)
    if rest.startswith("Character content other than whitespace is not allowed"):
        return None, f"Element '{name}' must not contain text directly, only child elements."
    if rest.startswith("Element content is not allowed"):
        return None, f"Element '{name}' must contain only text, not child elements."
    if rest.startswith("No matching global declaration"):
        return None, f"Element '{name}' is not a {schema.standard} root element."
    return attr, f"{_where(name, attr)}: {locator.qualify(rest, el)}"


def _unexpected(name: str, rest: str, el: etree._Element | None, locator: _Locator, schema: _Schema) -> str:
    if el is None:
        return f"Element '{name}' is not allowed at this place."
    namespace = etree.QName(el).namespace
    parent = el.getparent()
    inside = f" inside '{_display(parent)}'" if parent is not None else ""
    if schema.standard == "BPMN 2.0" and not _OMG.match(el.tag):
        return (f"Element '{name}' is not allowed{inside}: extension elements belong inside "
                "'extensionElements'.")
    if namespace == etree.QName(locator.tree.getroot()).namespace and \
            etree.QName(el).localname not in schema.names:
        return f"Element '{name}' is not part of {schema.standard}: check the spelling."
    found = re.search(r"Expected is (?:one of )?\( (.*) \)", rest, re.DOTALL)
    expected = f" Expected here: {_expected(found[1], el, locator)}." if found else ""
    return (f"Element '{name}' is not allowed at this place{inside} (the standard fixes which "
            f"elements may appear, and in which order).{expected}")


def _bad_value(name: str, attr: str | None, value: str, xs_type: str, locator: _Locator) -> str:
    if xs_type == "xs:ID":
        if locator.id_count(value) > 1:
            return _DUPLICATE_ID.format(value)
        return (f"The id '{value}' is not a valid id: an id starts with a letter or '_' and has no "
                "spaces or colons.")
    wanted = _TYPES.get(xs_type, f"a valid {xs_type.split(':')[-1]}")
    return f"{_where(name, attr)} has the value '{value}', which is not allowed: it must be {wanted}."


def _where(name: str, attr: str | None) -> str:
    return f"Attribute '{attr}' of element '{name}'" if attr else f"Element '{name}'"


def _expected(listing: str, el: etree._Element | None, locator: _Locator, limit: int = 6) -> str:
    names = [locator.qualify(n.strip(), el) for n in listing.split(",") if n.strip()]
    shown = ", ".join(names[:limit])
    return shown + (f" (or {len(names) - limit} more)" if len(names) > limit else "")


def _display(el: etree._Element) -> str:
    local = etree.QName(el).localname
    return f"{el.prefix}:{local}" if el.prefix else local


class _Locator:
    """Find the element a schema error is about, and write names as the file writes them.

    Everything here stays linear in the file's size per error: an element's `nsmap` lists every
    namespace in scope, so walking all of them for each element would not be.
    """

    _STEP = re.compile(r"(?:([\w.\-]+):)?([\w.\-]+|\*)(?:\[(\d+)\])?")

    def __init__(self, tree: etree._ElementTree):
        self.tree = tree
        self._root_prefixes = {uri: prefix for prefix, uri in tree.getroot().nsmap.items()}
        self._lines: dict[int, list[etree._Element]] | None = None
        self._ids: Counter[str] | None = None

    def find(self, entry: etree._LogEntry) -> etree._Element | None:
        """Return the element an error entry names: by its path, else the last one on its line."""
        el = self._walk(entry.path or "")
        if el is not None and el.sourceline == entry.line:
            return el
        if self._lines is None:
            self._lines = {}
            for each in self.tree.iter(etree.Element):
                self._lines.setdefault(each.sourceline, []).append(each)
        on_line = self._lines.get(entry.line, [])
        return on_line[-1] if on_line else None

    def _walk(self, path: str) -> etree._Element | None:
        """Follow a libxml2 node path (/p:a/*[2]/b[3]; '*' is an element in a default namespace)."""
        steps = []
        for step in path.split("/")[1:]:
            found = self._STEP.fullmatch(step)
            if found is None:
                return None
            prefix, local, index = found[1], found[2], found[3] or "1"
            if local == "*":
                steps.append(f"*[{index}]")
            elif prefix:
                steps.append(f"*[name()='{prefix}:{local}'][{index}]")
            else:
                steps.append(f"*[name()='{local}' and namespace-uri()=''][{index}]")
        found_els = self.tree.xpath("/" + "/".join(steps)) if steps else []
        return found_els[0] if found_els else None

    def qualify(self, text: str, el: etree._Element | None) -> str:
        """Write the {namespace}local names in a message as prefix:local, the way the file does."""
        own = {etree.QName(el).namespace: el.prefix} if el is not None else {}

        def swap(found: re.Match) -> str:
            prefix = own.get(found[1], self._root_prefixes.get(found[1]))
            return f"{prefix}:{found[2]}" if prefix else found[2]

        return re.sub(r"\{([^}]*)\}([\w.\-*]+)", swap, text)

    def id_count(self, value: str) -> int:
        """Count the elements that carry an id."""
        if self._ids is None:
            self._ids = Counter(el.get("id") for el in self.tree.iter(etree.Element) if _OMG.match(el.tag))
        return self._ids[value]


# ---------------------------------------------------------------------------------------------
# Where an element is


def element_line(el: etree._Element | None) -> int | None:
    """Return the source line of an element, if known."""
    return el.sourceline if el is not None and el.sourceline else None


def element_id(el: etree._Element | None) -> str | None:
    """Return the id of the element or of its nearest ancestor that has one."""
    while el is not None:
        if isinstance(el.tag, str) and el.get("id"):
            return el.get("id")
        el = el.getparent()
    return None
