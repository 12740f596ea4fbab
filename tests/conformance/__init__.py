"""Conformance suite: one small model per BPMN construct, each run three ways (see README.md here)."""
