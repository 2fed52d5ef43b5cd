"""Payrail's shared package: everything the thin function handlers call into."""
