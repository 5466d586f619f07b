"""Operator tools: describe the topics and groups, replay, scale, verify and report."""
