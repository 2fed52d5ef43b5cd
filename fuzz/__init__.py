"""Schemathesis against /openapi.json on a fresh local stack, signed in (``make fuzz``)."""
