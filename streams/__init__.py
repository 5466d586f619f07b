"""Streaming payment reconciliation: Faust worker, pure matching engine, contracts."""

__version__ = "0.1.0"
