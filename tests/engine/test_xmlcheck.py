"""engine.xmlcheck: uploads are untrusted XML; problems come back as sentences with line and id."""

from __future__ import annotations

import glob
import os

import pytest
from lxml import etree

from engine import xmlcheck
from engine.errors import InvalidModel

FILES = os.path.join(os.path.dirname(__file__), "files")
MIWG = sorted(glob.glob("/work/shared/samples/miwg/*.bpmn"))
DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"
DOCTYPE_REFUSED = "Files with a DOCTYPE declaration are refused: models must not define entities."


def read(name: str) -> bytes:
    with open(os.path.join(FILES, name), "rb") as fh:
        return fh.read()


def bpmn(process_body: str, root_attrs: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t"{root_attrs}>
  <bpmn:process id="proc" isExecutable="true">
{process_body}
  </bpmn:process>
</bpmn:definitions>
""".encode()


def messages(problems) -> list[str]:
    return [p.message for p in problems]


# ---------------------------------------------------------------------------------------------
# Refused before parsing


def test_external_entity_is_refused_without_reading_the_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    content = (f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>\n'
               "<x>&e;</x>").encode()
    tree, problems = xmlcheck.parse_untrusted("xxe.bpmn", content)
    assert tree is None
    assert messages(problems) == [DOCTYPE_REFUSED]
    assert problems[0].line == 2
    assert "TOP-SECRET-42" not in str(problems)


@pytest.mark.parametrize("disguise", ["bom", "comment", "utf16", "lowercase"])
def test_doctype_is_found_behind_bom_comments_and_other_encodings(disguise):
    doctype = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    content = {
        "bom": b"\xef\xbb\xbf" + doctype.encode(),
        "comment": ("<!-- a harmless comment -->\n" + doctype).encode(),
        "utf16": ('<?xml version="1.0" encoding="UTF-16"?>' + doctype).encode("utf-16"),
        "lowercase": doctype.replace("DOCTYPE", "doctype").encode(),
    }[disguise]
    tree, problems = xmlcheck.parse_untrusted("xxe.bpmn", content)
    assert tree is None
    assert len(problems) == 1 and "refused" in problems[0].message


def test_billion_laughs_is_refused():
    lols = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)]
    content = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [' + "".join(lols) + "]>\n<lolz>&lol9;</lolz>").encode()
    tree, problems = xmlcheck.parse_untrusted("bomb.bpmn", content)
    assert tree is None
    assert "DOCTYPE" in problems[0].message


def test_doctype_alone_is_refused():
    content = read("xmlcheck_minimal.bpmn").replace(
        b"<bpmn:definitions", b"<!DOCTYPE bpmn:definitions>\n<bpmn:definitions", 1)
    tree, kind, problems = xmlcheck.check_file("doctype.bpmn", content)
    assert (tree, kind) == (None, None)
    assert messages(problems) == [DOCTYPE_REFUSED]


def test_doctype_inside_the_document_is_refused():
    tree, problems = xmlcheck.parse_untrusted("late.bpmn", b"<a>\n<!DOCTYPE a>\n</a>")
    assert tree is None
    assert problems[0].line == 2 and "DOCTYPE" in problems[0].message


def test_oversize_file_is_refused_with_the_limit_in_the_message():
    content = read("xmlcheck_minimal.bpmn")
    tree, problems = xmlcheck.parse_untrusted("big.bpmn", content, max_bytes=1000)
    assert tree is None
    assert "1,000 bytes" in problems[0].message
    assert f"{len(content):,}" in problems[0].message


def test_default_limit_is_five_megabytes():
    tree, problems = xmlcheck.parse_untrusted("big.bpmn", b"<a/>" + b" " * xmlcheck.MAX_BYTES)
    assert tree is None
    assert "5,000,000 bytes" in problems[0].message


@pytest.mark.parametrize("content", [b"", b"  \n\t "])
def test_empty_file_is_refused(content):
    tree, problems = xmlcheck.parse_untrusted("empty.bpmn", content)
    assert tree is None
    assert messages(problems) == ["The file is empty."]


@pytest.mark.parametrize("content", [b"<?php echo 1; ?>\n<a/>", b"<a>\n<?php echo 1; ?>\n</a>"])
def test_processing_instructions_are_refused(content):
    tree, problems = xmlcheck.parse_untrusted("pi.bpmn", content)
    assert tree is None
    assert "Processing instructions" in problems[0].message


def test_xinclude_is_refused():
    content = b'<a xmlns:xi="http://www.w3.org/2001/XInclude">\n<xi:include href="/etc/passwd"/>\n</a>'
    tree, problems = xmlcheck.parse_untrusted("xi.bpmn", content)
    assert tree is None
    assert problems[0].line == 2 and "XInclude" in problems[0].message


# ---------------------------------------------------------------------------------------------
# Encodings


def test_binary_file_is_refused():
    tree, problems = xmlcheck.parse_untrusted("diagram.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert tree is None
    assert "not a text file" in problems[0].message


def test_invalid_utf8_names_the_line():
    content = b'<?xml version="1.0"?>\n<a>\n<b>K\xe4si</b>\n</a>'
    tree, problems = xmlcheck.parse_untrusted("latin.bpmn", content)
    assert tree is None
    assert problems[0].line == 3
    assert problems[0].message.startswith("The file is not valid UTF-8 text: line 3")


def test_unsupported_encoding_is_refused():
    tree, problems = xmlcheck.parse_untrusted("e.bpmn", b'<?xml version="1.0" encoding="EBCDIC-US"?><a/>')
    assert tree is None
    assert "'EBCDIC-US', which is not supported" in problems[0].message


@pytest.mark.parametrize("content", [
    '<?xml version="1.0" encoding="ISO-8859-1"?>\n<a>Käsittely</a>'.encode("latin-1"),
    '<?xml version="1.0" encoding="UTF-16"?>\n<a>Käsittely</a>'.encode("utf-16"),
    "<a>Käsittely</a>".encode("utf-16-le"),
    b"\xef\xbb\xbf<a>K\xc3\xa4sittely</a>",
])
def test_declared_latin1_and_utf16_files_are_read(content):
    tree, problems = xmlcheck.parse_untrusted("ok.bpmn", content)
    assert problems == []
    assert tree.getroot().text == "Käsittely"


# ---------------------------------------------------------------------------------------------
# Well-formedness


def test_truncated_xml_names_the_line_and_the_open_tag():
    tree, problems = xmlcheck.parse_untrusted("truncated.bpmn", read("xmlcheck_truncated.bpmn"))
    assert tree is None
    [problem] = problems
    assert problem.message == ("The file is not well-formed XML: the tag 'bpmn:userTask' opened on line 7 "
                               "is never closed.")
    assert (problem.line, problem.element) == (7, "review")


@pytest.mark.parametrize("content, line, fragment", [
    (b"<a>\n<b>\n</c>\n</a>", 3, "the tag 'b' opened on line 2 is closed by '</c>' on line 3"),
    (b"<a>\n<b x=1/>\n</a>", 2, "attribute value is not in quotes"),
    (b'<a>\n<b x="1" x="2"/>\n</a>', 2, "the attribute 'x' appears twice"),
    (b"<a>\n<b>x & y</b>\n</a>", 2, "must be written as '&amp;'"),
    (b"<a>\n<b>x < y</b>\n</a>", 2, "must be written as '&lt;'"),
    (b"<a>\n<b>&nbsp;</b>\n</a>", 2, "'&nbsp;' is not defined in XML"),
    (b"<a/>\n<b/>", 2, "content after the end of the root element"),
    (b"<a>\n<x:b/>\n</a>", 2, "the namespace prefix 'x' is not declared"),
    (b'{"json": true}', 1, "does not start with an XML tag"),
    (b'\n<?xml version="1.0"?><a/>', 2, "must be at the very start of the file"),
    (b"<a>" * 300 + b"</a>" * 300, 1, "nested more than 256 levels deep"),
])
def test_well_formedness_errors_are_sentences_with_lines(content, line, fragment):
    tree, problems = xmlcheck.parse_untrusted("broken.bpmn", content)
    assert tree is None
    [problem] = problems
    assert problem.message.startswith("The file is not well-formed XML: ")
    assert fragment in problem.message
    assert problem.line == line


# ---------------------------------------------------------------------------------------------
# Kind and schema


def test_minimal_camunda_bpmn_passes():
    tree, kind, problems = xmlcheck.check_file("minimal.bpmn", read("xmlcheck_minimal.bpmn"))
    assert problems == []
    assert kind == "bpmn"
    assert tree.getroot().get("id") == "Definitions_1"


def test_dmn13_table_passes():
    _tree, kind, problems = xmlcheck.check_file("table.dmn", read("xmlcheck_table.dmn"))
    assert (kind, problems) == ("dmn", [])


@pytest.mark.parametrize("namespace", ["http://www.omg.org/spec/DMN/20151101/dmn.xsd",
                                       "http://www.omg.org/spec/DMN/20180521/MODEL/"])
def test_older_dmn_versions_are_validated(namespace):
    table = read("xmlcheck_table.dmn").split(b"<dmndi:DMNDI>")[0] + b"</definitions>"
    table = table.replace(DMN13.encode(), namespace.encode())
    assert xmlcheck.check_file("old.dmn", table)[1:] == ("dmn", [])
    broken = table.replace(b'hitPolicy="FIRST"', b'hitPolicy="FIRSTEST"')
    [problem] = xmlcheck.check_file("old.dmn", broken)[2]
    assert problem.element == "tier_table"
    assert "'FIRSTEST', which is not allowed: use one of UNIQUE, FIRST" in problem.message


def test_sequence_flow_without_target_ref_is_reported():
    _tree, kind, problems = xmlcheck.check_file("flow.bpmn", read("xmlcheck_flow_without_target.bpmn"))
    assert kind == "bpmn"
    [problem] = problems
    assert problem.message == "Element 'bpmn:sequenceFlow' is missing the required attribute 'targetRef'."
    assert (problem.file, problem.line, problem.element) == ("flow.bpmn", 31, "flow_2")


def test_unknown_element_in_a_process_is_reported():
    _tree, _kind, problems = xmlcheck.check_file("unknown.bpmn", read("xmlcheck_unknown_element.bpmn"))
    [problem] = problems
    assert problem.message == "Element 'bpmn:aproveTask' is not part of BPMN 2.0: check the spelling."
    assert (problem.line, problem.element) == (26, "approve")


def test_wrong_root_is_not_a_model():
    tree, kind, problems = xmlcheck.check_file("picture.xml", read("xmlcheck_wrong_root.xml"))
    assert kind is None
    [problem] = problems
    assert problem.message.startswith("The file is not a BPMN or DMN file: its root element is 'svg'")
    assert (problem.file, problem.line) == ("picture.xml", 2)
    with pytest.raises(InvalidModel):
        xmlcheck.model_kind(tree)


def test_bpmn_element_other_than_definitions_is_not_a_model_root():
    content = b'<bpmn:process xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="p"/>'
    tree, kind, problems = xmlcheck.check_file("p.bpmn", content)
    assert kind is None
    assert "not a BPMN or DMN file: its root element is 'bpmn:process'" in problems[0].message
    assert xmlcheck.schema_problems("p.bpmn", tree)[0].message == problems[0].message


def test_model_kind_reads_the_root_namespace():
    assert xmlcheck.model_kind(xmlcheck.parse_untrusted("m.bpmn", read("xmlcheck_minimal.bpmn"))[0]) == "bpmn"
    assert xmlcheck.model_kind(xmlcheck.parse_untrusted("t.dmn", read("xmlcheck_table.dmn"))[0]) == "dmn"


@pytest.mark.parametrize("body, line, element, message", [
    ('    <bpmn:task id="a" />\n    <bpmn:task id="a" />', 6, "a",
     "The id 'a' is used by more than one element; ids must be unique in a file."),
    ('    <bpmn:task id="1st" />', 5, "1st",
     "The id '1st' is not a valid id: an id starts with a letter or '_' and has no spaces or colons."),
    ('    <bpmn:task id="a" formKey="x" />', 5, "a",
     ("Element 'bpmn:task' does not allow the attribute 'formKey'; extension attributes need their own "
      "namespace prefix, such as 'camunda:'.")),
    ('    <bpmn:task id="a" isForCompensation="maybe" />', 5, "a",
     ("Attribute 'isForCompensation' of element 'bpmn:task' has the value 'maybe', which is not allowed: "
      "it must be true or false.")),
    ('    <bpmn:task id="a"><camunda:inputOutput /></bpmn:task>', 5, "a",
     ("Element 'camunda:inputOutput' is not allowed inside 'bpmn:task': extension elements belong inside "
      "'extensionElements'.")),
    ('    <bpmn:task id="a">Approve</bpmn:task>', 5, "a",
     "Element 'bpmn:task' must not contain text directly, only child elements."),
    ('    <bpmn:task id="a"><bpmn:incoming>x:f</bpmn:incoming></bpmn:task>', 5, "a",
     "Element 'bpmn:incoming' refers to 'x:f', but the prefix 'x' is not declared in the file."),
])
def test_schema_errors_are_sentences_with_line_and_id(body, line, element, message):
    problems = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert [(p.line, p.element, p.message) for p in problems] == [(line, element, message)]


def test_misplaced_bpmn_element_lists_what_is_expected():
    body = '    <bpmn:task id="a" />\n    <bpmn:documentation>late</bpmn:documentation>'
    [problem] = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert problem.message.startswith("Element 'bpmn:documentation' is not allowed at this place inside "
                                      "'bpmn:process'")
    assert "Expected here: bpmn:" in problem.message
    assert (problem.line, problem.element) == (6, "proc")


def test_every_schema_error_is_reported():
    body = ('    <bpmn:sequenceFlow id="f1" sourceRef="a" />\n'
            '    <bpmn:sequenceFlow id="f2" targetRef="a" />\n'
            '    <bpmn:task id="a" />')
    problems = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert [(p.element, p.line) for p in problems] == [("f1", 5), ("f2", 6)]


@pytest.mark.parametrize("path", MIWG, ids=[os.path.basename(p) for p in MIWG])
def test_miwg_reference_diagram_passes(path):
    with open(path, "rb") as fh:
        content = fh.read()
    _tree, kind, problems = xmlcheck.check_file(os.path.basename(path), content)
    assert (kind, problems) == ("bpmn", [])


def test_all_miwg_reference_diagrams_are_present():
    assert len(MIWG) == 21, "the MIWG samples are expected in /work/shared/samples/miwg"


# ---------------------------------------------------------------------------------------------
# Where an element is


def test_element_id_is_found_up_the_tree():
    tree = xmlcheck.parse_untrusted("m.bpmn", read("xmlcheck_minimal.bpmn"))[0]
    ns = {"bpmn": xmlcheck.BPMN_NS}
    condition = tree.xpath("//bpmn:conditionExpression", namespaces=ns)[0]
    assert xmlcheck.element_id(condition) == "flow_3"
    assert xmlcheck.element_line(condition) == 33
    assert xmlcheck.element_id(tree.getroot()) == "Definitions_1"
    assert xmlcheck.element_id(etree.Element("x")) is None
    assert xmlcheck.element_line(None) is None


def test_schema_problems_stop_after_fifty():
    body = "\n".join(f'    <bpmn:sequenceFlow id="f{i}" sourceRef="a" />' for i in range(60))
    problems = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert len(problems) == 51
    assert [p.element for p in problems[:2]] == ["f0", "f1"]
    assert "fix the first 50 and check again" in problems[-1].message


def test_thousands_of_schema_errors_are_reported_without_locating_each():
    body = "\n".join(f'    <bpmn:task id="t{i}" isForCompensation="maybe" />' for i in range(600))
    problems = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert len(problems) == 51
    assert problems[0].message == ("Attribute 'isForCompensation' of element 'bpmn:task' has the value "
                                   "'maybe', which is not allowed: it must be true or false.")
    assert problems[0].line is None
    assert "fix the first 50 and check again" in problems[-1].message


def test_thousands_of_repeated_ids_are_located():
    body = "\n".join('    <bpmn:task id="same" />' for _ in range(600))
    problems = xmlcheck.check_file("m.bpmn", bpmn(body))[2]
    assert len(problems) == 51
    assert [(p.line, p.element) for p in problems[:2]] == [(6, "same"), (7, "same")]


def test_repeated_ids_in_extension_elements_are_allowed():
    body = ('    <bpmn:userTask id="a"><bpmn:extensionElements><camunda:formData>'
            '<camunda:formField id="amount" /></camunda:formData></bpmn:extensionElements></bpmn:userTask>\n'
            '    <bpmn:userTask id="b"><bpmn:extensionElements><camunda:formData>'
            '<camunda:formField id="amount" /></camunda:formData></bpmn:extensionElements></bpmn:userTask>')
    assert xmlcheck.check_file("m.bpmn", bpmn(body))[2] == []


@pytest.mark.parametrize("prefix", ["bpmn:", ""])
def test_errors_in_a_one_line_file_name_the_right_element(prefix):
    tags = f'<{prefix}task id="a" isForCompensation="x"/><{prefix}task id="b"/><{prefix}task id="c"/>'
    xmlns = f'xmlns{":" + prefix[:-1] if prefix else ""}="{xmlcheck.BPMN_NS}"'
    content = (f'<{prefix}definitions {xmlns} id="d" targetNamespace="t"><{prefix}process id="p">{tags}'
               f"</{prefix}process></{prefix}definitions>").encode()
    [problem] = xmlcheck.check_file("one-line.bpmn", content)[2]
    assert (problem.line, problem.element) == (1, "a")
    assert f"element '{prefix}task'" in problem.message
