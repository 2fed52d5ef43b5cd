"""Payouts: creation with idempotency, the worker's submission, and the status lifecycle."""
