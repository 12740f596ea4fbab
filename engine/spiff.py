"""The SpiffWorkflow boundary: the only module that imports SpiffWorkflow.

It owns the parser (Camunda flavour), the serializer, the restricted script engine, the
engine clock (SpiffWorkflow's notion of "now") and the translation of SpiffWorkflow's
exceptions into `engine.errors`. Nothing outside this module touches SpiffWorkflow objects
except through the small helpers here.
"""

from __future__ import annotations

import os

from SpiffWorkflow.bpmn.parser.BpmnParser import XSD_PATH as _BPMN_XSD
from SpiffWorkflow.dmn.parser.BpmnDmnParser import XSD_DIR as _DMN_XSD_DIR

BPMN_XSD_PATH = _BPMN_XSD
DMN_XSD_PATHS = {
    "https://www.omg.org/spec/DMN/20191111/MODEL/": os.path.join(_DMN_XSD_DIR, "DMN13.xsd"),
    "http://www.omg.org/spec/DMN/20180521/MODEL/": os.path.join(_DMN_XSD_DIR, "DMN12.xsd"),
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": os.path.join(_DMN_XSD_DIR, "DMN.xsd"),
}
