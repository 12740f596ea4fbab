"""Polku's process engine: deploy BPMN/DMN, run instances, persist state and audit events.

Start at `engine/runtime.py` (start, complete, message, engine steps) and `engine/deploy.py`
(validate and version models). Only `engine/spiff.py` imports SpiffWorkflow; nothing here
imports Flask.
"""
