"""make chaos: the invariants under faults on a fresh local stack."""
