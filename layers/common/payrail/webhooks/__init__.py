"""Payment webhooks: signature schemes, the receiving use case, the exactly-once application of
events to payouts, and the scheduled reconciliation of payouts whose webhooks never arrived."""
