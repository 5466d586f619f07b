"""Default topic names of the contract (the worker may configure others)."""

from __future__ import annotations

from typing import Final

PAYMENTS_TOPIC: Final = "payments"
LEDGER_TOPIC: Final = "ledger"
MATCHED_TOPIC: Final = "recon.matched"
EXCEPTIONS_TOPIC: Final = "recon.exceptions"
DLQ_TOPIC: Final = "recon.dlq"
