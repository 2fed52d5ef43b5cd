"""Bank sync: linking a bank connection, the scheduled fan-out, the sync worker and reading."""
