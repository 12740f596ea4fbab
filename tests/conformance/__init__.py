"""Conformance suite: one small model per BPMN construct, each case run three ways (see test_conformance.py)."""
